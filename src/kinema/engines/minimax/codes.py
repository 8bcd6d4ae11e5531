"""MiniMax's ``base_resp.status_code`` values, and the error each one that ends a generation maps to."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any, Final

from kinema.domain.errors import EngineMisconfigured, GenerationFailed, InvalidInput, KinemaError


class StatusCode(IntEnum):
    """``base_resp.status_code`` values that the engine treats specially."""

    OK = 0  #: Success.
    UNKNOWN_ERROR = 1000  #: MiniMax's own hiccup; retried.
    TIMEOUT = 1001  #: MiniMax timed out; retried.
    RATE_LIMITED = 1002  #: Too many requests a minute; waited out.
    AUTH_FAILED = 1004  #: The API key was refused.
    INSUFFICIENT_BALANCE = 1008  #: The MiniMax account cannot pay for the video.
    INTERNAL_ERROR = 1013  #: MiniMax's internal service error; retried.
    SENSITIVE_INPUT = 1026  #: The prompt or image failed MiniMax's content check.
    SENSITIVE_OUTPUT = 1027  #: The generated video failed MiniMax's content check.
    TOKEN_RATE_LIMITED = 1039  #: Too many tokens a minute; waited out like 1002.
    INVALID_PARAMETERS = 2013  #: The request broke one of MiniMax's rules.
    INVALID_KEY = 2049  #: The API key is not a valid key.


#: Waited out, then tried again on the gate.
RATE_LIMITED: Final = frozenset({StatusCode.RATE_LIMITED, StatusCode.TOKEN_RATE_LIMITED})
#: Retried with backoff, like a network failure.
TRANSIENT: Final = frozenset({StatusCode.UNKNOWN_ERROR, StatusCode.TIMEOUT, StatusCode.INTERNAL_ERROR})


def refusal(code: int, message: str, *, submitting: bool) -> KinemaError:
    """The error for an upstream answer that ends the generation.

    A refused key (1004, 2049) or an empty MiniMax balance (1008) means no task can succeed
    until the operator acts, so both are `EngineMisconfigured`: the task fails with code 500
    and `/readyz` reports the engine degraded until a generation succeeds again.
    """
    if code in (StatusCode.AUTH_FAILED, StatusCode.INVALID_KEY):
        return EngineMisconfigured(f"MiniMax refused the API key ({code}): {message}")
    if code == StatusCode.INSUFFICIENT_BALANCE:
        return EngineMisconfigured(
            f"the MiniMax account's balance is too low to pay for the video ({code}): {message}"
        )
    if code == StatusCode.SENSITIVE_INPUT:
        return InvalidInput(f"MiniMax's content check refused the prompt or image ({code}): {message}")
    if code == StatusCode.SENSITIVE_OUTPUT:
        return GenerationFailed(f"MiniMax's content check refused the generated video ({code}): {message}")
    if code == StatusCode.INVALID_PARAMETERS and submitting:
        return InvalidInput(f"MiniMax refused the request's parameters ({code}): {message}")
    # 2013 while polling means MiniMax no longer knows a task it gave us: not the input's fault.
    return GenerationFailed(f"MiniMax answered error {code}: {message}")


def status_of(answer: Mapping[str, Any]) -> tuple[int, str]:
    """``base_resp``'s code and message; an answer without one counts as a success."""
    base = answer.get("base_resp")
    if not isinstance(base, Mapping):
        return StatusCode.OK, ""
    try:
        code = int(base.get("status_code", 0))
    except (TypeError, ValueError):
        code = StatusCode.UNKNOWN_ERROR
    return code, str(base.get("status_msg") or "")
