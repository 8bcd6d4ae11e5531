"""How much of a request body each route takes, enforced while the body streams in.

A body is refused as soon as it is known to be too large: at once when its ``Content-Length``
says so, else when the bytes received so far pass the route's cap. Nobody, with a key or
without, makes the server hold (or spool to disk) more than the route can use. The refusal is
the envelope with code 413, and the connection closes after it, so the rest is never read.

Any answer given before its request's body was read whole (a refused key, say) closes the
connection as well: left open, the server would go on reading, and throwing away, whatever the
client still sends.

This sits in front of every request, so it stays small: a request without a body passes
straight through, and only one with a body has its ``receive`` and ``send`` wrapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kinema.api.envelope import Envelope, is_upload_path
from kinema.domain.errors import KinemaError

#: What a route without a cap of its own takes: every JSON body of this API fits in it.
DEFAULT_BODY_BYTES: Final = 16 * 1024
_CLOSE: Final = (b"connection", b"close")


class BodyTooLarge(KinemaError):
    """The request body is larger than its route takes."""

    code = 413


@dataclass(frozen=True, slots=True)
class BodyCap:
    """The most a route's body may hold, and the words of the refusal."""

    max_bytes: int
    message: str

    @classmethod
    def of_body(cls, max_bytes: int) -> BodyCap:
        return cls(max_bytes, f"the request body is larger than {describe_size(max_bytes)}")


def describe_size(size: int) -> str:
    """A byte count as the messages say it: ``64 KB``, ``10 MB``, ``1.5 MB``."""
    if size < 1024 * 1024:
        return f"{size / 1024:g} KB"
    return f"{size / (1024 * 1024):g} MB"


class BodyLimit:
    """ASGI middleware: each route's body capped (`caps` by path, else `default`) as it streams."""

    def __init__(self, app: ASGIApp, *, caps: Mapping[str, BodyCap], default: BodyCap, strict: bool) -> None:
        self.app = app
        self.caps = dict(caps)
        self.default = default
        self.strict = strict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        streamed = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
                streamed = declared is None
            elif name == b"transfer-encoding":
                streamed = True
        if not streamed and not declared:  # no body at all
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        cap = self.caps.get(path[len(root) :] if root and path.startswith(root) else path, self.default)
        if declared is not None and declared > cap.max_bytes:
            await self.refusal(scope, cap)(scope, receive, send)
            return
        request = _CappedRequest(self, scope, cap, receive, send)
        await self.app(scope, request.receive, request.send)
        if request.refused and not request.answered:
            await self.refusal(scope, cap)(scope, receive, send)

    def refusal(self, scope: Scope, cap: BodyCap) -> Envelope:
        """The answer to a body over `cap`; the connection closes after it."""
        error = BodyTooLarge(cap.message)
        return Envelope(
            error.code,
            error.message,
            strict=self.strict,
            upload=is_upload_path(scope["path"]),
            headers={"connection": "close"},
        )


class _CappedRequest:
    """One request's body counted as the app reads it, and its answer watched on the way out."""

    __slots__ = ("_receive", "_send", "answered", "cap", "complete", "limit", "received", "refused", "scope")

    def __init__(self, limit: BodyLimit, scope: Scope, cap: BodyCap, receive: Receive, send: Send) -> None:
        self.limit = limit
        self.scope = scope
        self.cap = cap
        self._receive = receive
        self._send = send
        self.received = 0
        self.complete = False  #: The whole body has been read.
        self.refused = False  #: The body passed the cap; the app's own answer is replaced.
        self.answered = False  #: An answer has started going out.

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.cap.max_bytes:
                # Whatever the app makes of the error, the answer is the refusal (below).
                self.refused = not self.answered
                raise BodyTooLarge(self.cap.message)
            if not message.get("more_body", False):
                self.complete = True
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            if message["type"] == "http.response.start" and not self.answered:
                self.answered = True
                await self.limit.refusal(self.scope, self.cap)(self.scope, self._receive, self._send)
            return
        if message["type"] == "http.response.start":
            self.answered = True
            if not self.complete:
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
        await self._send(message)
