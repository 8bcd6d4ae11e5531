"""Webhook secrets: one active per account, and the one it replaced for a day after a rotation."""

from __future__ import annotations

import base64
import secrets as random
from typing import Final

from sqlalchemy import Connection, insert, select, update

from kinema.store.schema import webhook_secrets

PREFIX: Final = "whsec_"
#: After a rotation the old secret signs beside the new one this long, so receivers can switch.
OVERLAP_MS: Final = 24 * 3600 * 1000


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return PREFIX + base64.b64encode(random.token_bytes(32)).decode()


def active_secret(connection: Connection, account_id: str) -> str | None:
    return connection.execute(
        select(webhook_secrets.c.secret)
        .where(webhook_secrets.c.account_id == account_id, webhook_secrets.c.retired_at.is_(None))
        .order_by(webhook_secrets.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def ensure_secret(connection: Connection, account_id: str, now: int) -> str:
    """The account's secret, made on first need."""
    return active_secret(connection, account_id) or rotate_secret(connection, account_id, now)


def rotate_secret(connection: Connection, account_id: str, now: int) -> str:
    """Make a new active secret; the previous one keeps signing beside it for a day."""
    connection.execute(
        update(webhook_secrets)
        .where(webhook_secrets.c.account_id == account_id, webhook_secrets.c.retired_at.is_(None))
        .values(retired_at=now)
    )
    secret = new_secret()
    connection.execute(insert(webhook_secrets).values(account_id=account_id, secret=secret, created_at=now))
    return secret


def signing_secrets(connection: Connection, account_id: str, now: int) -> list[str]:
    """The active secret first, then any retired less than a day ago."""
    rows = connection.execute(
        select(webhook_secrets.c.secret, webhook_secrets.c.retired_at)
        .where(
            webhook_secrets.c.account_id == account_id,
            (webhook_secrets.c.retired_at.is_(None)) | (webhook_secrets.c.retired_at > now - OVERLAP_MS),
        )
        .order_by(webhook_secrets.c.retired_at.is_not(None), webhook_secrets.c.id.desc())
    ).all()
    return [row.secret for row in rows]
