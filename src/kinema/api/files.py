"""``GET``/``HEAD /files/{key}``: stored files behind signed, expiring links.

The link is checked before anything else, so a bad or expired link learns nothing about the
file. Successful answers support single byte ranges (players seek with them), conditional
requests and caching until the link expires.

Files are streamed from `BlobStore.open_read` rather than with starlette's `FileResponse`
(which does handle ranges): the file is opened before the status line is sent, so a file
deleted by retention in between gets a clean 410 instead of a broken response, the path is
never resolved again after the store checked it, and any `BlobStore`, local or not, is served
the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from typing import BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from kinema.storage.base import BlobInfo, BlobStore, InvalidKey, media_type
from kinema.storage.signing import LinkCheck, LinkSigner

CHUNK_SIZE = 64 * 1024

_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})", re.IGNORECASE)
"""One range; 19 digits covers any real size and keeps `int` far from its digit limit."""


class RangeNotSatisfiable(Exception):
    """The Range header asks for bytes the file does not have."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The half-open byte span ``[start, stop)`` one Range header asks of a `size`-byte file.

    None means "send the whole file": a header we do not understand, or several ranges, which
    HTTP allows us to answer in full. Raises `RangeNotSatisfiable` when no byte can be sent.
    """
    if "," in header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        if last and int(last) < start:
            return None  # invalid, and an invalid range is ignored rather than refused
        if start >= size:
            raise RangeNotSatisfiable
        stop = min(int(last) + 1, size) if last else size
        return start, stop
    if not last:
        return None  # "bytes=-"
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiable
    return max(size - suffix, 0), size


def files_router(store: BlobStore, signer: LinkSigner, clock: Callable[[], float]) -> APIRouter:
    """The router serving signed links to the files in `store`; `clock` gives Unix seconds."""
    router = APIRouter()

    # A plain `def`: stat and open block, so FastAPI runs this in its thread pool.
    @router.api_route("/files/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
    def serve_file(key: str, request: Request) -> Response:
        now = int(clock())
        expires = _single(request, "expires")
        check = signer.verify(key, expires, _single(request, "signature"), now=now)
        if check is LinkCheck.TAMPERED:
            return _error(403, "The link is not valid")
        if check is LinkCheck.EXPIRED:
            return _error(410, "The link has expired")
        assert expires is not None  # a valid link has one

        try:
            info = store.stat(key)
        except InvalidKey:
            return _error(404, "File not found")
        if info is None:
            # Validly signed, so the file existed: it has since expired under retention.
            return _error(410, "The file is no longer available")

        headers = {
            "ETag": info.etag,
            "Last-Modified": formatdate(info.modified_at, usegmt=True),
            "Cache-Control": f"private, max-age={max(int(expires) - now, 0)}",
            "Accept-Ranges": "bytes",
        }
        if _not_modified(request, info):
            return Response(status_code=304, headers=headers)

        headers["Content-Type"] = media_type(key)
        headers["X-Content-Type-Options"] = "nosniff"
        start, stop, status = 0, info.size, 200
        range_header = request.headers.get("range")
        if range_header is not None and _if_range_holds(request, headers):
            try:
                span = parse_range(range_header, info.size)
            except RangeNotSatisfiable:
                return _error(416, "Range not satisfiable", {"Content-Range": f"bytes */{info.size}"})
            if span is not None:
                start, stop, status = *span, 206
                headers["Content-Range"] = f"bytes {start}-{stop - 1}/{info.size}"
        headers["Content-Length"] = str(stop - start)

        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        try:
            handle = store.open_read(key)
        except FileNotFoundError:
            return _error(410, "The file is no longer available")
        return _FileStream(handle, start, stop, status, headers)

    return router


class _FileStream(StreamingResponse):
    """Streams a span of an open file, and closes it however the response ends.

    The file is opened before the status line goes out (so a vanished file is a clean 410), so
    it must be closed here too: a player that drops the connection before the first byte never
    starts the body's generator, whose own ``with`` would then never run.
    """

    def __init__(self, handle: BinaryIO, start: int, stop: int, status: int, headers: dict[str, str]) -> None:
        self._handle = handle
        super().__init__(_read_span(handle, start, stop), status_code=status, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._handle.close()


def _single(request: Request, name: str) -> str | None:
    """A query parameter given exactly once; a repeated one is as good as missing."""
    values = request.query_params.getlist(name)
    return values[0] if len(values) == 1 else None


def _not_modified(request: Request, info: BlobInfo) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        # Weak comparison, as HTTP prescribes for If-None-Match.
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or info.etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an unreadable date is ignored, as HTTP says
    if since.tzinfo is None:  # "-0000": HTTP dates are GMT
        since = since.replace(tzinfo=UTC)
    # HTTP dates have whole seconds; the file's time is truncated to match.
    return int(info.modified_at) <= since.timestamp()


def _if_range_holds(request: Request, headers: dict[str, str]) -> bool:
    """Whether a Range may be honoured: If-Range absent, or naming exactly this version."""
    if_range = request.headers.get("if-range")
    return if_range is None or if_range in (headers["ETag"], headers["Last-Modified"])


def _read_span(handle: BinaryIO, start: int, stop: int) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        remaining = stop - start
        while remaining > 0:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                # Replaced by a shorter file after the length was sent; fail loudly, not short.
                raise RuntimeError("the stored file shrank while it was being sent")
            remaining -= len(chunk)
            yield chunk


def _error(code: int, msg: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"code": code, "msg": msg}, status_code=code, headers={"Cache-Control": "no-store", **(headers or {})}
    )
