"""API keys: random, shown once, stored only as a hash, each belonging to one account."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final

from kinema.domain.accounts import Caller, KeyRecord
from kinema.domain.errors import NotFound, Unauthorized
from kinema.store import credits as account_statements
from kinema.store import keys as statements
from kinema.store.database import Connection, Database

__all__ = ["Caller", "KeyRecord", "NewKey", "authenticate", "open_account", "revoke_key"]

KEY_PREFIX: Final = "kn_"
#: 32 random bytes in URL-safe base64: 43 characters after the prefix.
_KEY_PATTERN: Final = re.compile(r"kn_[A-Za-z0-9_-]{43}")
_SHOWN_PREFIX_LENGTH: Final = 10


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made; `secret` is the only copy that will ever exist."""

    record: KeyRecord
    secret: str


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
    account_statements.insert_account(connection, account_id, name, now)
    return account_id


def create_key(connection: Connection, account_id: str, name: str, now: int) -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = new_id()
    prefix = secret[:_SHOWN_PREFIX_LENGTH]
    statements.insert_key(connection, key_id, account_id, name, prefix, hash_key(secret), now)
    account_name = account_statements.account_name(connection, account_id)
    if account_name is None:
        raise NotFound(f"no account {account_id!r}")
    record = KeyRecord(key_id, account_id, account_name, name, prefix, now, None)
    return NewKey(record, secret)


def authenticate(db: Database, secret: str) -> Caller:
    """The caller behind a key, or `Unauthorized` for a malformed, unknown or revoked one."""
    if not is_well_formed(secret):
        raise Unauthorized()
    return authenticate_hash(db, hash_key(secret))


def authenticate_hash(db: Database, key_hash: str) -> Caller:
    """The caller behind the key with this hash, or `Unauthorized` (quick enough for the event loop)."""
    caller = statements.live_key(db, key_hash)
    if caller is None:
        raise Unauthorized()
    return caller


def list_keys(connection: Connection) -> list[KeyRecord]:
    return statements.list_keys(connection)


def find_key(connection: Connection, reference: str) -> KeyRecord:
    """A key by its id, its shown prefix, or the whole secret."""
    if is_well_formed(reference):
        matches = statements.keys_by_hash(connection, hash_key(reference))
    else:
        matches = statements.keys_by_id_or_prefix(connection, reference)
    if not matches:
        raise NotFound(f"no key matches {reference!r}")
    if len(matches) > 1:
        raise NotFound(f"{len(matches)} keys match {reference!r}; give the key's id")
    return matches[0]


def revoke_key(connection: Connection, key_id: str, now: int) -> bool:
    """Revoke a key; False when it was already revoked."""
    return statements.revoke(connection, key_id, now)


def open_account(connection: Connection, name: str, starting_credits: int, now: int) -> NewKey:
    """A new account with its first key and, if asked, starting credits."""
    from kinema.accounts import credits

    credits.check_amount(starting_credits)
    account_id = create_account(connection, name, now)
    key = create_key(connection, account_id, name, now)
    if starting_credits:
        credits.grant(connection, account_id, starting_credits, now, note="starting credits")
    return key


def resolve_account(connection: Connection, reference: str) -> str:
    """The account named by an account id, or by any reference `find_key` takes."""
    if statements.account_exists(connection, reference):
        return reference
    return find_key(connection, reference).account_id
