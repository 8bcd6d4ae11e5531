"""Who is calling: the bearer key on every API call, and the admin token on admin routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from kinema.accounts.keys import Caller, authenticate
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


def caller(
    found: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Security(api_key)] = None,
) -> Caller:
    return authenticate(found.db, authorization)


def admin(
    found: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Security(admin_token)] = None,
) -> None:
    token = found.settings.admin_token
    scheme, _, given = (authorization or "").strip().partition(" ")
    if token is None or scheme.lower() != "bearer":
        raise Unauthorized()
    if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise Unauthorized()


CallerDep = Annotated[Caller, Depends(caller)]
ServicesDep = Annotated[Services, Depends(services)]
