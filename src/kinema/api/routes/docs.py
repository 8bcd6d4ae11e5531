"""The interactive reference at ``/docs``, served whole from this server, and ``/llms.txt``.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, which fails on a machine without the
internet and tells a third party who reads the docs. Here the same Swagger UI files come from
the installed ``fastapi-offline`` package (only its files are used, not its app class).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse

from kinema.api.auth import ServicesDep

router = APIRouter(tags=["docs"])

SWAGGER_ASSETS: Final = Path(str(files("fastapi_offline") / "static"))
ASSET_TYPES: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
#: The page names the server's own address where this placeholder stands.
BASE_URL_PLACEHOLDER: Final = "{{BASE_URL}}"


@router.get("/docs", include_in_schema=False)
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} API reference",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )


@router.api_route("/docs/assets/{name}", methods=["GET", "HEAD"], include_in_schema=False)
def swagger_asset(name: str) -> FileResponse:
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no documentation file called {name!r}")
    # The files change only with the pinned package, so a day of caching is safe.
    return FileResponse(
        SWAGGER_ASSETS / name, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/llms.txt", include_in_schema=False)
def llms_txt(found: ServicesDep) -> PlainTextResponse:
    """A plain-text guide to the API for tools and agents, with this server's address in it."""
    text = (files("kinema.api") / "llms.txt").read_text(encoding="utf-8")
    base = found.settings.public_url.rstrip("/")
    return PlainTextResponse(text.replace(BASE_URL_PLACEHOLDER, base), headers={"Cache-Control": "no-cache"})
