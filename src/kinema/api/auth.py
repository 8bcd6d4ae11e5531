"""Who is calling: the bearer key on every API call, and the admin token on admin routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header

from kinema.accounts.keys import Caller, authenticate
from kinema.api.services import Services, services
from kinema.domain.errors import Unauthorized


def caller(
    found: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    return authenticate(found.db, authorization)


def admin(
    found: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    token = found.settings.admin_token
    scheme, _, given = (authorization or "").strip().partition(" ")
    if token is None or scheme.lower() != "bearer":
        raise Unauthorized()
    if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise Unauthorized()


CallerDep = Annotated[Caller, Depends(caller)]
ServicesDep = Annotated[Services, Depends(services)]
