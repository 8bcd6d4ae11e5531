"""The wire envelope ``{"code", "msg", "data"}``, and the one place errors become answers.

Logical outcomes travel as HTTP 200 with the outcome in ``code``, as the published service
does; rate limiting (a real 429 with ``Retry-After``) and unknown routes (a real 404) are the
exceptions. In strict mode the HTTP status equals ``code`` wherever ``code`` is a real status.
"""

from __future__ import annotations

import errno
import logging
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kinema.domain.errors import KinemaError, RateLimited, StorageFull, TaskNotFound, Unavailable

log = logging.getLogger("kinema.api")

SUCCESS: Final = "success"
#: What the published API answers for a task that is not the caller's (or does not exist).
RECORD_NOT_FOUND: Final = "recordInfo is null"
_REAL_STATUSES: Final = frozenset(status.value for status in HTTPStatus)


def ok(data: Any = None, msg: str = SUCCESS) -> dict[str, Any]:
    return {"code": 200, "msg": msg, "data": data}


#: The upload routes' answers also carry ``success``, as the published upload API does.
UPLOAD_ROUTES: Final = frozenset({"file-stream-upload", "file-url-upload", "file-base64-upload"})


def is_upload_route(request: Request) -> bool:
    return is_upload_path(request.url.path)


def is_upload_path(path: str) -> bool:
    return path.rsplit("/", 1)[-1] in UPLOAD_ROUTES


class Envelope(JSONResponse):
    """An answer in the envelope, with the HTTP status the mode calls for."""

    def __init__(
        self,
        code: int,
        msg: str,
        data: Any = None,
        *,
        strict: bool = False,
        headers: dict[str, str] | None = None,
        upload: bool = False,
    ) -> None:
        status = code if strict and code in _REAL_STATUSES else 200
        body = {"success": code == 200} if upload else {}
        # Also here, since a 500 goes out past every middleware (`kinema.api.headers`).
        headers = {"X-Content-Type-Options": "nosniff"} | (headers or {})
        super().__init__(body | {"code": code, "msg": msg, "data": data}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, *, strict: bool) -> None:
    """Turn every error into the envelope; nothing reaches a client as a stack trace."""

    @app.exception_handler(KinemaError)
    async def _kinema_error(request: Request, error: KinemaError) -> JSONResponse:
        upload = is_upload_route(request)
        if isinstance(error, RateLimited | Unavailable):
            # Overload and outages keep their real status, with when to try again, so that
            # clients, proxies and load balancers all understand them.
            headers = {"Retry-After": str(error.retry_after_s)}
            response = Envelope(error.code, error.message, headers=headers, upload=upload)
            response.status_code = error.code if isinstance(error, Unavailable) else 429
            if isinstance(error, Unavailable):
                log.warning(
                    "answered %d to %s %s: %s", error.code, request.method, request.url.path, error.message
                )
            return response
        return Envelope(error.code, message_of(error), strict=strict, upload=upload)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return Envelope(422, describe_validation_error(error), strict=strict, upload=is_upload_route(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
        upload = is_upload_route(request)
        if error.status_code == 400:
            # A body that cannot be read (broken multipart framing, say) is an outcome like any other.
            return Envelope(400, message, strict=strict, upload=upload)
        # Unknown routes and methods keep their real status: there is no logical outcome.
        response = Envelope(
            error.status_code, message, headers=getattr(error, "headers", None), upload=upload
        )
        response.status_code = error.status_code
        return response

    @app.exception_handler(OSError)
    async def _os_error(request: Request, error: OSError) -> JSONResponse:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk: nothing was stored
            return await _kinema_error(request, StorageFull())
        return await _unexpected(request, error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _error: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        response = Envelope(500, "internal server error")
        response.status_code = 500
        return response


def message_of(error: KinemaError) -> str:
    """The words the wire uses for a domain error."""
    if isinstance(error, TaskNotFound):
        return RECORD_NOT_FOUND
    return error.message


def describe_validation_error(error: RequestValidationError) -> str:
    """FastAPI's first parameter error, as one sentence that names the field and the rule."""
    first = error.errors()[0] if error.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("query", "body", "header", "path")]
    field = ".".join(location) or "request"
    return f"{field} {first.get('msg', 'is invalid').lower()}"
