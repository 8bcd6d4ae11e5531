"""Retention: what expired is deleted, in small batches, by a background thread.

Uploads go after their own expiry; a finished task's files (result video, frames, its copy of
the input) after the result retention, its record after the task retention. A task whose files
went still answers recordInfo; its links are refused. Each batch is its own short transaction,
so the API never waits behind a long sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update

from kinema.domain.task import TaskState
from kinema.storage.base import BlobStore
from kinema.store.database import Database
from kinema.store.schema import callback_attempts, callback_deliveries, idempotency_keys, tasks, uploads

BATCH = 200
_FINISHED = (TaskState.SUCCESS.value, TaskState.FAIL.value)


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
        result = connection.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))
        report.idempotency_keys = result.rowcount
    return report


def _sweep_uploads(db: Database, store: BlobStore, now: int, batch: int) -> int:
    with db.read() as connection:
        keys = list(
            connection.execute(
                select(uploads.c.key).where(uploads.c.expires_at <= now).limit(batch)
            ).scalars()
        )
    for key in keys:
        store.delete(key)
    if keys:
        with db.write() as connection:
            # Only rows still expired: a re-upload to the same path in the meantime stays.
            connection.execute(delete(uploads).where(uploads.c.key.in_(keys), uploads.c.expires_at <= now))
    return len(keys)


def _sweep_task_files(db: Database, store: BlobStore, finished_before: int, now: int, batch: int) -> int:
    with db.read() as connection:
        rows = connection.execute(
            select(tasks.c.id, tasks.c.account_id)
            .where(
                tasks.c.state.in_(_FINISHED),
                tasks.c.completed_at <= finished_before,
                tasks.c.files_purged_at.is_(None),
            )
            .limit(batch)
        ).all()
    for task_id, account_id in rows:
        _delete_task_files(store, account_id, task_id)
    if rows:
        with db.write() as connection:
            connection.execute(
                update(tasks).where(tasks.c.id.in_([row.id for row in rows])).values(files_purged_at=now)
            )
    return len(rows)


def _sweep_tasks(db: Database, store: BlobStore, finished_before: int, now: int, batch: int) -> int:
    with db.read() as connection:
        rows = connection.execute(
            select(tasks.c.id, tasks.c.account_id)
            .where(tasks.c.state.in_(_FINISHED), tasks.c.completed_at <= finished_before)
            .limit(batch)
        ).all()
    for task_id, account_id in rows:
        _delete_task_files(store, account_id, task_id)
    if rows:
        task_ids = [row.id for row in rows]
        with db.write() as connection:
            deliveries = select(callback_deliveries.c.id).where(callback_deliveries.c.task_id.in_(task_ids))
            connection.execute(
                delete(callback_attempts).where(callback_attempts.c.delivery_id.in_(deliveries))
            )
            connection.execute(delete(callback_deliveries).where(callback_deliveries.c.task_id.in_(task_ids)))
            connection.execute(delete(tasks).where(tasks.c.id.in_(task_ids)))
    return len(rows)


def _delete_task_files(store: BlobStore, account_id: str, task_id: str) -> None:
    for prefix in (f"results/{account_id}/{task_id}", f"inputs/{account_id}/{task_id}"):
        store.delete_prefix(prefix)
