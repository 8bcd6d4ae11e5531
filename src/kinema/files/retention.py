"""Retention: what expired is deleted, in small batches, by a background thread.

Uploads go after their own expiry; a finished task's files (result video, frames, its copy of
the input) after the result retention, its record after the task retention. A task whose files
went still answers recordInfo; its links are refused. Each batch is its own short transaction,
so the API never waits behind a long sweep. An input copy that no task owns goes too: createTask
writes the copy of an image of this server just before the task, and a crash between the two
leaves the copy alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from kinema.storage import layout
from kinema.storage.base import BlobStore
from kinema.store import callbacks, idempotency, tasks, uploads
from kinema.store.database import Database

BATCH = 200
#: How old an input copy with no task must be to go: createTask writes the copy moments before
#: the task, so a younger one may belong to a task being created.
ORPHAN_INPUT_GRACE_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    result_ms: int
    task_ms: int


@dataclass
class SweepReport:
    uploads: int = 0
    task_files: int = 0
    tasks: int = 0
    idempotency_keys: int = 0
    orphan_inputs: int = 0


def sweep(
    db: Database, store: BlobStore, now: int, policy: RetentionPolicy, batch: int = BATCH
) -> SweepReport:
    """Delete everything that expired by `now`; returns what went."""
    report = SweepReport()
    while (count := _sweep_uploads(db, store, now, batch)) > 0:
        report.uploads += count
    while (count := _sweep_task_files(db, store, now - policy.result_ms, now, batch)) > 0:
        report.task_files += count
    while (count := _sweep_tasks(db, store, now - policy.task_ms, now, batch)) > 0:
        report.tasks += count
    with db.write() as connection:
        report.idempotency_keys = idempotency.delete_expired(connection, now)
    report.orphan_inputs = sweep_orphan_inputs(db, store, now, batch)
    return report


def sweep_orphan_inputs(db: Database, store: BlobStore, now: int, batch: int = BATCH) -> int:
    """Delete the input copies of tasks that do not exist, written `ORPHAN_INPUT_GRACE_MS`
    before `now` or earlier; returns how many tasks' copies went."""
    written_before = now - ORPHAN_INPUT_GRACE_MS
    folders: dict[str, str] = {}  # task id -> its input folder
    for key, info in store.list_files(layout.INPUTS):
        owner = layout.input_owner(key)
        if owner is not None and info.modified_ns // 1_000_000 < written_before:
            folders.setdefault(*owner)
    task_ids = sorted(folders)
    deleted = 0
    for start in range(0, len(task_ids), batch):
        chunk = task_ids[start : start + batch]
        with db.read() as connection:
            known = tasks.existing(connection, chunk)
        for task_id in chunk:
            if task_id not in known:
                store.delete_prefix(folders[task_id])
                deleted += 1
    return deleted


def _sweep_uploads(db: Database, store: BlobStore, now: int, batch: int) -> int:
    with db.read() as connection:
        keys = uploads.expired_keys(connection, now, batch)
    for key in keys:
        store.delete(key)
    if keys:
        with db.write() as connection:
            # Only rows still expired: a re-upload to the same path in the meantime stays.
            uploads.delete_expired(connection, keys, now)
    return len(keys)


def _sweep_task_files(db: Database, store: BlobStore, finished_before: int, now: int, batch: int) -> int:
    with db.read() as connection:
        rows = tasks.finished_by(connection, finished_before, unpurged=True, limit=batch)
    for task_id, account_id in rows:
        _delete_task_files(store, account_id, task_id)
    if rows:
        with db.write() as connection:
            tasks.mark_files_purged(connection, [task_id for task_id, _ in rows], now)
    return len(rows)


def _sweep_tasks(db: Database, store: BlobStore, finished_before: int, now: int, batch: int) -> int:
    with db.read() as connection:
        rows = tasks.finished_by(connection, finished_before, unpurged=False, limit=batch)
    for task_id, account_id in rows:
        _delete_task_files(store, account_id, task_id)
    if rows:
        task_ids = [task_id for task_id, _ in rows]
        with db.write() as connection:
            callbacks.delete_of_tasks(connection, task_ids)
            tasks.delete_tasks(connection, task_ids)
    return len(rows)


def _delete_task_files(store: BlobStore, account_id: str, task_id: str) -> None:
    for prefix in layout.task_prefixes(account_id, task_id):
        store.delete_prefix(prefix)
