"""What nobody, with or without a key, can do to the service: each test is a way it once broke."""

from __future__ import annotations

import base64
import errno
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.service import running_app

from kinema.accounts import credits, keys
from kinema.domain.accounts import MAX_BALANCE
from kinema.domain.errors import InvalidInput, StorageFull
from kinema.files import uploads
from kinema.files.uploads import UploadRules
from kinema.storage import layout, local
from kinema.storage.local import LocalBlobStore
from kinema.storage.own import read_sample
from kinema.store.database import Database
from kinema.store.dialects import SQLite
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import NewTask, Stage

ADMIN_TOKEN = "a-very-long-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SAMPLE = "http://127.0.0.1:8000/samples/sample.jpg"


def sample_jpeg_bytes() -> bytes:
    return read_sample("sample.jpg") or b""


@pytest.mark.parametrize("amount", [10**30, -(10**30), MAX_BALANCE + 1, 2**63 - 1])
def test_a_grant_beyond_the_bound_is_refused_with_words(make_settings: MakeSettings, amount: int) -> None:
    with running_app(make_settings(admin_token=ADMIN_TOKEN)) as service:
        answer = service.client.post(
            "/api/v1/admin/credits", json={"account": service.account_id, "amount": amount}, headers=ADMIN
        )
        assert answer.status_code == 200
        assert answer.json()["code"] == 422
        assert "amount" in answer.json()["msg"]
        assert service.api.balance() == 1000


def test_the_balance_never_passes_its_bound_and_every_grant_moves_it(db: Database) -> None:
    with db.write() as connection:
        account_id = keys.open_account(connection, "rich", 0, 1).record.account_id
        assert credits.grant(connection, account_id, MAX_BALANCE, 2) == MAX_BALANCE
    with db.write() as connection, pytest.raises(InvalidInput, match="at most"):
        credits.grant(connection, account_id, 1, 3)
    with db.write() as connection, pytest.raises(InvalidInput, match="between"):
        credits.grant(connection, account_id, -(2**63), 3)
    with db.read() as connection:
        balance = credits.balance(connection, account_id)
        assert balance == MAX_BALANCE
        assert isinstance(balance, int)
        assert credits.ledger_sum(connection, account_id) == balance


def test_a_list_filtered_by_state_means_the_state_shown(make_settings: MakeSettings) -> None:
    with running_app(make_settings(max_running_per_account=1, workers=0)) as service:
        db = Database(service.settings.database_url)
        with db.write() as connection:
            made = [
                lifecycle.create_task(
                    connection,
                    service.account_id,
                    NewTask("m", "{}", {"prompt": "p"}, None, 0, True),
                    1,
                    10**9,
                ).id
                for _ in range(2)
            ]
        claim = lifecycle.claim_next(db, Stage.GENERATE, "w", 2, 60_000, 1)
        db.dispose()
        assert claim is not None
        held = next(task_id for task_id in made if task_id != claim.task.id)

        def listed(state: str) -> list[tuple[str, str]]:
            data = service.api.get("/api/v1/jobs/list", state=state)["data"]
            return [(task["taskId"], task["state"]) for task in data["tasks"]]

        assert listed("waiting") == [(held, "waiting")]
        assert listed("queuing") == []
        assert listed("generating") == [(claim.task.id, "generating")]
        assert service.api.get("/api/v1/jobs/recordInfo", taskId=held)["data"]["state"] == "waiting"


def test_a_database_locked_by_another_process_answers_503_with_retry_after(
    make_settings: MakeSettings, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the write lock of another process is SQLite's")
    settings = make_settings(database_busy_timeout_seconds=0.2)
    with running_app(settings) as service:
        other_process = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
        other_process.execute("BEGIN IMMEDIATE")
        try:
            answer = service.client.post(
                "/api/v1/jobs/createTask", json=seed_body(SAMPLE), headers=service.api.headers
            )
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "2"
            assert answer.json()["code"] == 503
            assert "busy" in answer.json()["msg"]
            ready = service.client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["data"]["database"].startswith("failing: the database is busy")
            assert (
                'kinema_database_failures_total{kind="Unavailable"} 1.0'
                in service.client.get("/metrics").text
            )
        finally:
            other_process.execute("COMMIT")
            other_process.close()
        assert service.api.balance() == 1000  # nothing was taken
        assert service.api.create(seed_body(SAMPLE))


def test_a_full_disk_answers_507_on_uploads_and_keeps_nothing(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_app(make_settings()) as service:

        def disk_full(*_args: object, **_kwargs: object) -> object:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(local.tempfile, "mkstemp", disk_full)
        answer = service.client.post(
            "/api/file-base64-upload",
            json={"base64Data": base64.b64encode(sample_jpeg_bytes()).decode(), "uploadPath": "images"},
            headers=service.api.headers,
        )
        assert answer.status_code == 507
        assert answer.json()["success"] is False
        assert "full" in answer.json()["msg"]
        assert "retry-after" in answer.headers


def test_the_database_being_full_is_told_apart_from_a_mistake(tmp_path: Path) -> None:
    database = tmp_path / "full.db"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE t (x TEXT)")
    connection.execute("PRAGMA max_page_count = 3")
    with pytest.raises(sqlite3.OperationalError) as full:  # noqa: PT012 - fills it row by row
        for _ in range(100):
            connection.execute("INSERT INTO t VALUES (?)", ("x" * 4000,))
    connection.close()
    dialect = SQLite(make_url(f"sqlite:///{database}"))
    assert isinstance(dialect.failure(full.value), StorageFull)
    assert dialect.failure(sqlite3.OperationalError("no such table: t")) is None
    assert dialect.failure(ValueError("ours")) is None


def test_uploads_to_one_path_at_once_all_succeed(db: Database, tmp_path: Path) -> None:
    with db.write() as connection:
        account_id = keys.open_account(connection, "uploader", 0, 1).record.account_id
    store = LocalBlobStore(tmp_path / "files")
    rules = UploadRules(max_bytes=10 * 1024 * 1024, allowed_types=frozenset({"image/jpeg"}))
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def upload(index: int) -> None:
        start.wait()
        try:
            uploads.save_upload(
                db,
                store,
                account_id,
                upload_path="images",
                file_name="photo.jpg",
                data=sample_jpeg_bytes(),
                rules=rules,
                now=10 + index,
                retention_ms=60_000,
            )
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=upload, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    found = uploads.find_upload(db, layout.upload_key(account_id, "images/photo.jpg"))
    assert found is not None
    assert found.size == len(sample_jpeg_bytes())
