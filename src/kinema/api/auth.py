"""Who is calling: the bearer key on every API call, and the admin token on admin routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from kinema.accounts.keys import Caller, authenticate, hash_key, is_well_formed
from kinema.api.services import Services, services
from kinema.domain.errors import Unauthorized

#: The schemes' names in the OpenAPI document (the first is the published document's own).
API_KEY_SCHEME = "BearerAuth"
ADMIN_SCHEME = "AdminToken"


class BearerHeader(HTTPBearer):
    """The ``Authorization`` header as sent, documented as a Bearer scheme.

    FastAPI's HTTPBearer documents the scheme (so ``/docs`` offers Authorize) but would answer
    a malformed header itself; this hands the header on whole, so that a missing, malformed or
    unknown key gets the contract's one answer.
    """

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.headers.get("authorization")


api_key = BearerHeader(
    scheme_name=API_KEY_SCHEME,
    description="Your API key: `kinema keys create`, or the one `make run` printed.",
)
admin_token = BearerHeader(scheme_name=ADMIN_SCHEME, description="The server's `KINEMA_ADMIN_TOKEN`.")


def bearer_token(authorization: str | None) -> str:
    """What an ``Authorization: Bearer <token>`` header carries, or `Unauthorized`."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    return token


def bearer_key_hash(authorization: str | None) -> str:
    """The stored hash of the key in an ``Authorization`` header, or `Unauthorized` when the
    header holds no well-formed key."""
    secret = bearer_token(authorization)
    if not is_well_formed(secret):
        raise Unauthorized()
    return hash_key(secret)


def caller(
    found: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Security(api_key)] = None,
) -> Caller:
    return authenticate(found.db, bearer_token(authorization))


def admin(
    found: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Security(admin_token)] = None,
) -> None:
    token = found.settings.admin_token
    if token is None:
        raise Unauthorized()
    if not hmac.compare_digest(bearer_token(authorization).encode(), token.get_secret_value().encode()):
        raise Unauthorized()


CallerDep = Annotated[Caller, Depends(caller)]
ServicesDep = Annotated[Services, Depends(services)]
