"""Running the app in-process for a test, with a funded account."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.support.api import Api
from tests.support.engines import InstantEngine

from kinema.accounts import keys
from kinema.api.app import create_app
from kinema.domain.clock import Clock, system_clock
from kinema.engines.base import Engine
from kinema.settings import Settings
from kinema.store.database import Database


@dataclass
class Running:
    app: FastAPI
    client: TestClient
    api: Api
    account_id: str
    settings: Settings

    def open_account(self, credits: int = 1000, name: str = "other") -> Api:
        db = Database(self.settings.database_url)
        with db.write() as connection:
            new = keys.open_account(connection, name, credits, system_clock())
        db.dispose()
        return Api(self.client, new.secret)


@contextmanager
def running_app(
    settings: Settings, engine: Engine | None = None, credits: int = 1000, clock: Clock = system_clock
) -> Iterator[Running]:
    """The app with its lifespan (and in-process workers, if the settings ask for them)."""
    app = create_app(settings, engine=engine or InstantEngine(), clock=clock)
    db = Database(settings.database_url)
    with db.write() as connection:
        new = keys.open_account(connection, "tester", credits, clock())
    db.dispose()
    with TestClient(app, base_url=settings.public_url, raise_server_exceptions=False) as client:
        yield Running(app, client, Api(client, new.secret), new.record.account_id, settings)
