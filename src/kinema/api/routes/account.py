"""The account's own routes: its balance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kinema.accounts import credits
from kinema.api.auth import CallerDep, ServicesDep
from kinema.api.envelope import ok

router = APIRouter(prefix="/api/v1/chat", tags=["account"])


@router.get("/credit", summary="Your balance in credits")
def credit(found: ServicesDep, who: CallerDep) -> dict[str, Any]:
    with found.db.read() as connection:
        return ok(credits.balance(connection, who.account_id))
