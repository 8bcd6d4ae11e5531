"""Operator routes, present only when ``KINEMA_ADMIN_TOKEN`` is set."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

from kinema.accounts import credits, keys
from kinema.api.auth import ServicesDep, admin
from kinema.api.envelope import ok
from kinema.domain.accounts import MAX_BALANCE

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(admin)])

#: Control characters (NUL among them) and unpaired surrogates: no name or reference holds them,
#: and PostgreSQL cannot store them.
_UNSTORABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _plain(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise PydanticCustomError(
            "control_characters", "must not contain control characters or unpaired surrogates"
        )
    return value


#: `_UNSTORABLE` as the document says it: no control character. (A JSON Schema string is Unicode
#: text, which holds no unpaired surrogate; the check above refuses those as well.)
_PLAIN_PATTERN: Final = r"^[^\u0000-\u001f\u007f-\u009f]*$"

#: Text from an operator, refused with words before any lookup when it holds what no row holds.
PlainText = Annotated[str, AfterValidator(_plain), Field(json_schema_extra={"pattern": _PLAIN_PATTERN})]


class NewKeyBody(BaseModel):
    name: PlainText = Field(min_length=1, max_length=200)
    credits: int = Field(default=0, ge=0, le=MAX_BALANCE)


class KeyReference(BaseModel):
    key: PlainText = Field(min_length=1, description="The key's id, its shown prefix, or the key itself.")


class GrantBody(BaseModel):
    account: PlainText = Field(min_length=1, description="An account id, or a key reference.")
    amount: int = Field(ge=-MAX_BALANCE, le=MAX_BALANCE, description="Negative to remove credits.")


@router.post("/keys", summary="Open an account with a key")
def create_key(found: ServicesDep, body: NewKeyBody) -> dict[str, Any]:
    with found.db.write() as connection:
        new = keys.open_account(connection, body.name, body.credits, found.clock())
    return ok({"key": new.secret, "keyId": new.record.id, "accountId": new.record.account_id})


@router.get("/keys", summary="Every key, without the secrets")
def list_keys(found: ServicesDep) -> dict[str, Any]:
    with found.db.read() as connection:
        records = keys.list_keys(connection)
    return ok(
        [
            {
                "keyId": record.id,
                "accountId": record.account_id,
                "account": record.account_name,
                "name": record.name,
                "prefix": record.prefix,
                "createTime": record.created_at,
                "revokeTime": record.revoked_at,
            }
            for record in records
        ]
    )


@router.post("/keys/revoke", summary="Revoke a key")
def revoke_key(found: ServicesDep, body: KeyReference) -> dict[str, Any]:
    with found.db.write() as connection:
        record = keys.find_key(connection, body.key)
        keys.revoke_key(connection, record.id, found.clock())
    return ok({"keyId": record.id})


@router.post("/credits", summary="Add (or remove) credits")
def grant(found: ServicesDep, body: GrantBody) -> dict[str, Any]:
    with found.db.write() as connection:
        account_id = keys.resolve_account(connection, body.account)
        balance = credits.grant(connection, account_id, body.amount, found.clock(), note="admin")
    return ok({"accountId": account_id, "balance": balance})
