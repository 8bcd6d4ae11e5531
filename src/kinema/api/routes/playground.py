"""The playground at ``/``: a page that drives the API from a browser, with nothing from outside.

Its files live in ``kinema/api/playground`` (package data): the page, its style sheet, and its
script as ES modules served as they are (``app.js`` imports the others; no build step). The page
names its assets with a ``?v=`` digest of every file together, so an asset fetched with the
current digest may be cached for good; the page itself, and the modules that ``app.js`` imports
by their plain names, are revalidated on every visit (and answer 304 while unchanged).

``/playground/camera/<move>.webp`` is the camera chips' preview of each move, made by the motion
engine on first request and kept in the data folder.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Final
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from kinema.api.auth import ServicesDep
from kinema.engines.camera_previews import CameraPreviews
from kinema.engines.motion.plan import CameraMove

router = APIRouter(tags=["playground"])

#: The page names these with the digest; the modules `app.js` imports are every other `.js`.
PAGE_ASSETS: Final = ("app.js", "style.css", "favicon.svg")
MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_FOREVER: Final = "public, max-age=31536000, immutable"
_REVALIDATE: Final = "no-cache"


def _folder() -> Traversable:
    return files("kinema.api") / "playground"


def _read(name: str) -> bytes:
    return (_folder() / name).read_bytes()


def _media_type(name: str) -> str | None:
    """The type of a playground file the browser may fetch; None for anything else."""
    if "/" in name or name.startswith(".") or not (_folder() / name).is_file():
        return None
    return MEDIA_TYPES.get(name[name.rfind(".") :]) if "." in name else None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _release() -> str:
    """One digest of every file of the playground: it changes whenever any of them does."""
    whole = hashlib.sha256()
    for entry in sorted(_folder().iterdir(), key=lambda item: item.name):
        if entry.is_file():
            whole.update(entry.name.encode() + b"\0" + entry.read_bytes() + b"\0")
    return whole.hexdigest()[:16]


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
    release = _release()
    for name in PAGE_ASSETS:
        html = html.replace(f"/playground/{name}", f"/playground/{name}?v={release}")
    headers = {
        "Cache-Control": _REVALIDATE,
        "Content-Security-Policy": _content_policy(found.settings.public_url),
        "Referrer-Policy": "no-referrer",
    }
    return _conditional(request, html.encode(), "text/html; charset=utf-8", headers)


@router.api_route("/playground/{name}", methods=["GET", "HEAD"], include_in_schema=False)
def asset(request: Request, name: str, v: str | None = None) -> Response:
    media_type = _media_type(name)
    if media_type is None:
        raise HTTPException(404, f"no playground file called {name!r}")
    data = _read(name)
    cache = _FOREVER if v == _release() else _REVALIDATE
    return _conditional(request, data, media_type, {"Cache-Control": cache})


@router.api_route("/playground/camera/{name}", methods=["GET", "HEAD"], include_in_schema=False)
def camera_preview(request: Request, name: str) -> Response:
    """A camera chip's looping preview of its move, made on first request (a tenth of a second)."""
    move = name.removesuffix(".webp")
    if not name.endswith(".webp") or move not in CameraMove.__members__.values():
        raise HTTPException(404, f"no camera preview called {name!r}")
    previews: CameraPreviews = request.app.state.camera_previews
    data = previews.get(CameraMove(move))
    return _conditional(request, data, "image/webp", {"Cache-Control": "public, max-age=86400"})
