"""The headers every answer of the app carries, whichever route (or error handler) made it.

``X-Content-Type-Options: nosniff``: a browser takes each answer for the type it says, so an
uploaded file or an error message can never run as a page or a script in this origin. A pure
ASGI layer that only touches the start of an answer, so it costs next to nothing per request.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF: Final = (b"x-content-type-options", b"nosniff")


class AnswerHeaders:
    """ASGI middleware: `NOSNIFF` on every HTTP answer that does not already carry it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == NOSNIFF[0] for name, _ in headers):
                    headers.append(NOSNIFF)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
