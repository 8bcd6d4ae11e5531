"""`kinema keys` and `kinema credits`: accounts, keys and credits, straight on the database.

They act on whatever database the settings name (``KINEMA_DATA_DIR`` or
``KINEMA_DATABASE_URL``), so they manage a running service from the same machine. The server's
modules are imported by the commands that use them, so that ``kinema credits`` (a client of the
API) starts as quickly as the other client commands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from kinema.cli import client as client_commands
from kinema.cli.app import app, console, fail
from kinema.cli.service import load_settings, require_schema
from kinema.client import DEFAULT_BASE_URL
from kinema.domain.clock import system_clock
from kinema.domain.errors import KinemaError

if TYPE_CHECKING:
    from kinema.store.database import Database

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
credits_app = typer.Typer(help="Credits: alone, your balance through the API; `add` changes an account's.")
webhooks_app = typer.Typer(help="Callbacks: the secret that signs them.", no_args_is_help=True)
secret_app = typer.Typer(help="An account's webhook secret.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(credits_app, name="credits")
app.add_typer(webhooks_app, name="webhooks")
webhooks_app.add_typer(secret_app, name="secret")


def _database() -> Database:
    from kinema import runtime

    db = runtime.open_database(load_settings())
    require_schema(db)
    return db


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who the key is for.")],
    credits: Annotated[int, typer.Option(min=0, help="Starting credits of the new account.")] = 0,
) -> None:
    """Open an account with a new key; the key is printed alone on the last line."""
    from kinema.accounts import keys as key_store

    db = _database()
    try:
        with db.write() as connection:
            new = key_store.open_account(connection, name, credits, system_clock())
    except KinemaError as error:
        fail(error.message)
    console.print(
        f"account {new.record.account_id} ({name}) with {credits} credits; key id {new.record.id}. "
        "The key is shown this once:",
        highlight=False,
    )
    print(new.secret, flush=True)


@keys_app.command("list")
def list_keys() -> None:
    """Every key, without the secrets."""
    from kinema.accounts import keys as key_store

    db = _database()
    with db.read() as connection:
        records = key_store.list_keys(connection)
    table = Table("key id", "prefix", "name", "account", "created", "revoked")
    for record in records:
        table.add_row(
            record.id,
            record.prefix + "…",
            record.name,
            f"{record.account_name} ({record.account_id})",
            _when(record.created_at),
            _when(record.revoked_at) if record.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(key: Annotated[str, typer.Argument(help="The key's id, its prefix, or the key itself.")]) -> None:
    """Revoke a key: it stops working at once."""
    from kinema.accounts import keys as key_store

    db = _database()
    try:
        with db.write() as connection:
            record = key_store.find_key(connection, key)
            changed = key_store.revoke_key(connection, record.id, system_clock())
    except KinemaError as error:
        fail(error.message)
    console.print(f"key {record.id} {'revoked' if changed else 'was already revoked'}", highlight=False)


@credits_app.callback(invoke_without_command=True)
def credits_balance(
    context: typer.Context,
    base_url: client_commands.BaseUrlOption = DEFAULT_BASE_URL,
    api_key: client_commands.ApiKeyOption = None,
) -> None:
    """Credits of an account: alone, your balance through the API; `add` changes one on the database."""
    if context.invoked_subcommand is None:
        client_commands.show_balance(base_url, api_key)


@credits_app.command("add", context_settings={"ignore_unknown_options": True})  # lets "-100" be a number
def add(
    account: Annotated[str, typer.Argument(help="An account id, or a key (id, prefix or the key itself).")],
    amount: Annotated[int, typer.Argument(help="Credits to add; negative to remove.")],
) -> None:
    """Add credits to an account."""
    from kinema.accounts import credits as ledger
    from kinema.accounts import keys as key_store

    db = _database()
    try:
        with db.write() as connection:
            account_id = key_store.resolve_account(connection, account)
            balance = ledger.grant(connection, account_id, amount, system_clock(), note="cli")
    except KinemaError as error:
        fail(error.message)
    console.print(f"account {account_id} now has {balance} credits", highlight=False)
    print(balance, flush=True)


def _when(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, UTC).strftime("%Y-%m-%d %H:%M")


@secret_app.command("create")
def create_secret(
    account: Annotated[str, typer.Argument(help="An account id, or a key (id, prefix or the key itself).")],
) -> None:
    """Make a new webhook secret for the account and print it; a previous one signs for a day more."""
    from kinema.accounts import keys as key_store
    from kinema.webhooks import secrets as webhook_secrets

    db = _database()
    try:
        with db.write() as connection:
            account_id = key_store.resolve_account(connection, account)
            secret = webhook_secrets.rotate_secret(connection, account_id, system_clock())
    except KinemaError as error:
        fail(error.message)
    console.print(f"new webhook secret of account {account_id}:", highlight=False)
    print(secret, flush=True)
