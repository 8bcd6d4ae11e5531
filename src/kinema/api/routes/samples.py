"""Sample images the service serves itself, so a first example needs nothing from outside."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from kinema.storage.own import read_sample

router = APIRouter(tags=["samples"])


@router.get("/samples/{name}", summary="A bundled sample image", include_in_schema=False)
def sample(name: str) -> Response:
    data = read_sample(name)
    if data is None:
        raise HTTPException(404, f"no sample called {name!r}")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})
