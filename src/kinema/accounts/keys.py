"""API keys: random, shown once, stored only as a hash, each belonging to one account."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, Connection, bindparam, insert, select, update

from kinema.domain.errors import NotFound, Unauthorized
from kinema.store.database import Database
from kinema.store.schema import accounts, api_keys

KEY_PREFIX: Final = "kn_"
#: 32 random bytes in URL-safe base64: 43 characters after the prefix.
_KEY_PATTERN: Final = re.compile(r"kn_[A-Za-z0-9_-]{43}")
_SHOWN_PREFIX_LENGTH: Final = 10


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the account and the key it used."""

    account_id: str
    key_id: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as listings show it: never the key itself, only its first characters."""

    id: str
    account_id: str
    account_name: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made; `secret` is the only copy that will ever exist."""

    record: KeyRecord
    secret: str


#: Built once: every API call runs it, and a prebuilt statement skips rebuilding and re-keying it.
_LIVE_KEY: Final = select(api_keys.c.id, api_keys.c.account_id).where(
    api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)


def hash_key(secret: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def is_well_formed(secret: str) -> bool:
    return _KEY_PATTERN.fullmatch(secret) is not None


def new_id() -> str:
    """An opaque, unguessable identifier: 32 lowercase hex digits."""
    return secrets.token_hex(16)


def create_account(connection: Connection, name: str, now: int) -> str:
    account_id = new_id()
    connection.execute(insert(accounts).values(id=account_id, name=name, balance=0, created_at=now))
    return account_id


def create_key(connection: Connection, account_id: str, name: str, now: int) -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = new_id()
    prefix = secret[:_SHOWN_PREFIX_LENGTH]
    connection.execute(
        insert(api_keys).values(
            id=key_id,
            account_id=account_id,
            name=name,
            prefix=prefix,
            key_hash=hash_key(secret),
            created_at=now,
        )
    )
    account_name = connection.execute(select(accounts.c.name).where(accounts.c.id == account_id)).scalar_one()
    record = KeyRecord(key_id, account_id, account_name, name, prefix, now, None)
    return NewKey(record, secret)


def bearer_hash(authorization: str | None) -> str:
    """The stored hash of the key in an ``Authorization: Bearer <key>`` header, or `Unauthorized`
    when the header holds no well-formed key."""
    if not authorization:
        raise Unauthorized()
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not is_well_formed(secret):
        raise Unauthorized()
    return hash_key(secret)


def authenticate(db: Database, authorization: str | None) -> Caller:
    """The caller behind an ``Authorization: Bearer <key>`` header, or `Unauthorized`."""
    row = db.first(_LIVE_KEY, {"key_hash": bearer_hash(authorization)})
    if row is None:
        raise Unauthorized()
    return Caller(account_id=row["account_id"], key_id=row["id"])


def list_keys(connection: Connection, condition: ColumnElement[bool] | None = None) -> list[KeyRecord]:
    query = (
        select(api_keys, accounts.c.name.label("account_name"))
        .join(accounts, accounts.c.id == api_keys.c.account_id)
        .order_by(api_keys.c.created_at, api_keys.c.id)
    )
    if condition is not None:
        query = query.where(condition)
    return [
        KeyRecord(
            row.id, row.account_id, row.account_name, row.name, row.prefix, row.created_at, row.revoked_at
        )
        for row in connection.execute(query)
    ]


def find_key(connection: Connection, reference: str) -> KeyRecord:
    """A key by its id, its shown prefix, or the whole secret."""
    if is_well_formed(reference):
        matches = list_keys(connection, api_keys.c.key_hash == hash_key(reference))
    else:
        matches = list_keys(connection, (api_keys.c.id == reference) | (api_keys.c.prefix == reference))
    if not matches:
        raise NotFound(f"no key matches {reference!r}")
    if len(matches) > 1:
        raise NotFound(f"{len(matches)} keys match {reference!r}; give the key's id")
    return matches[0]


def revoke_key(connection: Connection, key_id: str, now: int) -> bool:
    """Revoke a key; False when it was already revoked."""
    result = connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def open_account(connection: Connection, name: str, starting_credits: int, now: int) -> NewKey:
    """A new account with its first key and, if asked, starting credits."""
    from kinema.accounts import credits

    account_id = create_account(connection, name, now)
    key = create_key(connection, account_id, name, now)
    if starting_credits:
        credits.grant(connection, account_id, starting_credits, now, note="starting credits")
    return key


def resolve_account(connection: Connection, reference: str) -> str:
    """The account named by an account id, or by any reference `find_key` takes."""
    found = connection.execute(select(accounts.c.id).where(accounts.c.id == reference)).scalar_one_or_none()
    if found is not None:
        return str(found)
    return find_key(connection, reference).account_id
