"""Statements on secrets: each account's webhook secrets, and the server's own (link signing)."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from kinema.store.dialects import Dialect, serialise
from kinema.store.schema import server_secrets, webhook_secrets

_table = webhook_secrets


def hold_webhook_secrets(connection: Connection, account_id: str) -> None:
    """Make this transaction the only one changing the account's secrets until it ends."""
    serialise(connection, f"kinema.webhook-secrets:{account_id}")


def active_webhook_secret(connection: Connection, account_id: str) -> str | None:
    return connection.execute(
        select(_table.c.secret)
        .where(_table.c.account_id == account_id, _table.c.retired_at.is_(None))
        .order_by(_table.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def retire_webhook_secrets(connection: Connection, account_id: str, now: int) -> None:
    connection.execute(
        update(_table)
        .where(_table.c.account_id == account_id, _table.c.retired_at.is_(None))
        .values(retired_at=now)
    )


def insert_webhook_secret(connection: Connection, account_id: str, secret: str, now: int) -> None:
    connection.execute(insert(_table).values(account_id=account_id, secret=secret, created_at=now))


def webhook_secrets_since(connection: Connection, account_id: str, retired_after: int) -> list[str]:
    """The active secret first, then those retired after `retired_after`, newest first."""
    rows = connection.execute(
        select(_table.c.secret)
        .where(
            _table.c.account_id == account_id,
            (_table.c.retired_at.is_(None)) | (_table.c.retired_at > retired_after),
        )
        .order_by(_table.c.retired_at.is_not(None), _table.c.id.desc())
    )
    return [row.secret for row in rows]


def server_secret(connection: Connection, dialect: Dialect, name: str, new_value: str, now: int) -> str:
    """The server secret `name`, stored as `new_value` if there is none yet; whichever process
    stores it first, every process answers the same."""
    connection.execute(
        dialect.insert_or_ignore(server_secrets).values(name=name, value=new_value, created_at=now)
    )
    stored: str = connection.execute(
        select(server_secrets.c.value).where(server_secrets.c.name == name)
    ).scalar_one()
    return stored
