"""`kinema migrate` runs once however many start it, and nothing runs against a stale schema."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from tests.support.databases import DIALECTS, PostgresTemplates, empty_database_url
from tests.support.live import free_port
from tests.support.process import KINEMA, kinema, service_env

from kinema.store.database import MIGRATIONS_DIR, Database, Schema
from kinema.store.schema import metadata

#: This Kinema's newest revision, as its migrations folder has it.
HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_concurrent_migrations_take_turns(
    dialect: str, tmp_path: Path, postgres_templates: PostgresTemplates | None
) -> None:
    with empty_database_url(dialect, tmp_path, postgres_templates) as url:
        env = service_env(tmp_path / "data", url, free_port())
        starts = [
            subprocess.Popen(
                [str(KINEMA), "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        outcomes = [(start.wait(120), *start.communicate()) for start in starts]
        for code, _out, err in outcomes:
            assert code == 0, err
            assert err.strip() == f"database at revision {HEAD}"
        db = Database(url)
        try:
            assert db.schema() is Schema.CURRENT
            with db.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_server_default": False})
                assert compare_metadata(context, metadata) == []
        finally:
            db.dispose()


def test_serve_and_worker_refuse_a_schema_that_is_behind_until_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kinema.db'}"
    db = Database(url)
    command.upgrade(db.alembic_config(), "0004")
    env = service_env(tmp_path / "data", url, free_port())

    for role in ("serve", "worker"):
        refused = kinema(role, env=env)
        assert refused.returncode == 1
        assert " ".join(refused.stderr.split()).endswith(
            f"error: the database's schema is at revision 0004, older than this Kinema's ({HEAD}): "
            "run `kinema migrate`, then start again"
        )
        assert "Traceback" not in refused.stderr
    assert db.current_revision() == "0004", "a refusing start must not upgrade the schema itself"

    assert kinema("migrate", env=env).stderr.strip() == f"database at revision {HEAD}"
    assert db.schema() is Schema.CURRENT
    db.dispose()


def test_a_schema_newer_than_this_kinema_is_named_and_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kinema.db'}"
    db = Database(url)
    db.migrate()
    with db.write() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    env = service_env(tmp_path / "data", url, free_port())
    for command_name in ("migrate", "serve"):
        refused = kinema(command_name, env=env)
        assert refused.returncode == 1
        assert "revision 0099, which this Kinema does not know" in " ".join(refused.stderr.split())
    assert db.current_revision() == "0099"
    db.dispose()
