"""The playground at ``/``: a page that drives the API from a browser, with nothing from outside.

Its files live in ``kinema/api/playground`` (package data). The page names each asset with a
``?v=`` digest of its content, so an asset fetched with the current digest may be cached for
good, while the page itself is revalidated on every visit.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from typing import Final
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from kinema.api.auth import ServicesDep

router = APIRouter(tags=["playground"])

ASSET_TYPES: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_FOREVER: Final = "public, max-age=31536000, immutable"
_REVALIDATE: Final = "no-cache"


def _read(name: str) -> bytes:
    return (files("kinema.api") / "playground" / name).read_bytes()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _conditional(request: Request, data: bytes, media_type: str, headers: dict[str, str]) -> Response:
    """`data` with a strong ETag, or 304 when the browser already holds this version."""
    etag = f'"{_digest(data)}"'
    headers = headers | {"ETag": etag, "X-Content-Type-Options": "nosniff"}
    if etag in (value.strip() for value in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def _content_policy(public_url: str) -> str:
    """Only this server (and the address it writes into file links, if another) may be reached."""
    parts = urlsplit(public_url)
    links = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        f"img-src 'self' blob:{links}; media-src 'self'{links}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def page(request: Request, found: ServicesDep) -> Response:
    html = _read("index.html").decode()
    for name in ASSET_TYPES:
        html = html.replace(f"/playground/{name}", f"/playground/{name}?v={_digest(_read(name))}")
    headers = {
        "Cache-Control": _REVALIDATE,
        "Content-Security-Policy": _content_policy(found.settings.public_url),
        "Referrer-Policy": "no-referrer",
    }
    return _conditional(request, html.encode(), "text/html; charset=utf-8", headers)


@router.api_route("/playground/{name}", methods=["GET", "HEAD"], include_in_schema=False)
def asset(request: Request, name: str, v: str | None = None) -> Response:
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no playground file called {name!r}")
    data = _read(name)
    cache = _FOREVER if v == _digest(data) else _REVALIDATE
    return _conditional(request, data, media_type, {"Cache-Control": cache})
