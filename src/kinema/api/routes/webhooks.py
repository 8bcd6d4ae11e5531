"""The account's webhook secret, which signs its callbacks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kinema.api.auth import CallerDep, ServicesDep
from kinema.api.envelope import ok
from kinema.webhooks import secrets

router = APIRouter(prefix="/api/v1/webhooks", tags=["callbacks"])


@router.get("/secret", summary="Your webhook secret (made on first request)")
def secret(found: ServicesDep, who: CallerDep) -> dict[str, Any]:
    with found.db.write() as connection:
        return ok({"secret": secrets.ensure_secret(connection, who.account_id, found.clock())})


@router.post("/secret/rotate", summary="A new webhook secret; the old one also signs for a day")
def rotate(found: ServicesDep, who: CallerDep) -> dict[str, Any]:
    with found.db.write() as connection:
        return ok({"secret": secrets.rotate_secret(connection, who.account_id, found.clock())})
