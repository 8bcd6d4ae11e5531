"""Webhook secrets: one active per account, and the one it replaced for a day after a rotation."""

from __future__ import annotations

import base64
import secrets as random
from typing import Final

from kinema.store import secrets as statements
from kinema.store.database import Connection

PREFIX: Final = "whsec_"
#: After a rotation the old secret signs beside the new one this long, so receivers can switch.
OVERLAP_MS: Final = 24 * 3600 * 1000


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return PREFIX + base64.b64encode(random.token_bytes(32)).decode()


def active_secret(connection: Connection, account_id: str) -> str | None:
    return statements.active_webhook_secret(connection, account_id)


def ensure_secret(connection: Connection, account_id: str, now: int) -> str:
    """The account's secret, made on first need: however many ask at once, one is made."""
    found = active_secret(connection, account_id)
    if found is not None:
        return found
    statements.hold_webhook_secrets(connection, account_id)
    return active_secret(connection, account_id) or _replace(connection, account_id, now)


def rotate_secret(connection: Connection, account_id: str, now: int) -> str:
    """Make a new active secret; the previous one keeps signing beside it for a day."""
    statements.hold_webhook_secrets(connection, account_id)
    return _replace(connection, account_id, now)


def _replace(connection: Connection, account_id: str, now: int) -> str:
    statements.retire_webhook_secrets(connection, account_id, now)
    secret = new_secret()
    statements.insert_webhook_secret(connection, account_id, secret, now)
    return secret


def signing_secrets(connection: Connection, account_id: str, now: int) -> list[str]:
    """The active secret first, then any retired less than a day ago."""
    return statements.webhook_secrets_since(connection, account_id, now - OVERLAP_MS)
