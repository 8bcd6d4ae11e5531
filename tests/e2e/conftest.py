"""What the end-to-end tests share: one `kinema serve` per module and database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.databases import DIALECTS, PostgresTemplates, fresh_database_url
from tests.support.process import Served, serve

from kinema.accounts import keys
from kinema.domain.clock import system_clock
from kinema.store.database import Database


@pytest.fixture(scope="module", params=DIALECTS)
def service(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_templates: PostgresTemplates | None,
) -> Iterator[tuple[Served, str]]:
    """One `kinema serve` (the default, motion engine) for a module's tests, on each database;
    and its database's URL."""
    folder = tmp_path_factory.mktemp("served")
    with (
        fresh_database_url(request.param, folder, postgres_templates) as url,
        serve(folder / "data", url) as running,
    ):
        yield running, url


@pytest.fixture
def served(service: tuple[Served, str]) -> tuple[Served, str]:
    """The service, and the key of an account of the test's own with 100 credits."""
    running, url = service
    db = Database(url)
    with db.write() as connection:
        key = keys.open_account(connection, "e2e", 100, system_clock()).secret
    db.dispose()
    return running, key
