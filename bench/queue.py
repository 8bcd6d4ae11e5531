"""Queue benchmark on PostgreSQL: how fast Kinema's workers take tasks, against pgqueuer in the
same run on the same database. Run with ``python -m bench.queue``; figures go in
docs/benchmarks.md.

A fresh database on ``KINEMA_BENCH_POSTGRES_URL`` (else ``KINEMA_TEST_POSTGRES_URL``) holds
both: Kinema's schema, migrated, and pgqueuer's, installed. Consumers are processes of their own
(`bench._consumers`): Kinema's run `Worker` as ``kinema worker`` builds it (one generation
thread, one intake thread) on an engine that writes placeholder files at once; pgqueuer's run
its `QueueManager` with its defaults (jobs taken 10 at a time) and an entrypoint that does
nothing; for throughput also taking one job at a time, as a Kinema worker takes tasks.

- throughput: with 1, 4 and 16 consumer processes started and listening, the tasks are created
  in one transaction (Kinema's over 32 funded accounts, through the lifecycle's `create_task`,
  queued with nothing to fetch; pgqueuer's jobs in one `enqueue`), and the clock runs from its
  commit until the last is done: Kinema's last ``completed_at``, pgqueuer's queue empty.
- dispatch: one idle consumer in another process; a task (a job) is created and committed here,
  and its claim recorded there the moment it commits, on the wall clock both processes share.
  One at a time, each done before the next.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench._consumers import NOOP
from bench._databases import postgres_database, postgres_server
from kinema.accounts import keys
from kinema.domain.clock import system_clock
from kinema.domain.transitions import UNFINISHED
from kinema.store.database import Database
from kinema.store.schema import tasks
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import NewTask

ROOT = Path(__file__).resolve().parents[1]
MODEL = "hailuo/2-3-image-to-video-standard"
ACCOUNTS = 32
UNFINISHED_STATES = sorted(state.value for state in UNFINISHED)
#: Dispatch median across processes, in milliseconds.
DISPATCH_TARGET_MS = 20.0
#: Kinema's throughput against pgqueuer's, at the least.
THROUGHPUT_TARGET = 0.5


@dataclass(frozen=True)
class Dispatch:
    median_ms: float
    p95_ms: float


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class Consumers:
    """Consumer processes of one kind, started and listening; `stop` ends them."""

    def __init__(self, kind: str, count: int, spec: dict[str, str], env: dict[str, str], work: Path) -> None:
        self.records = [work / f"{kind}-{n}-{time.monotonic_ns()}.txt" for n in range(count)]
        clean = {name: value for name, value in os.environ.items() if not name.startswith("KINEMA_")}
        self.processes = []
        for record in self.records:
            command = [
                sys.executable,
                "-m",
                "bench._consumers",
                kind,
                json.dumps(spec | {"record": str(record)}),
            ]
            log = record.with_suffix(".log").open("w")
            self.processes.append(
                subprocess.Popen(command, cwd=ROOT, env=clean | env, stdout=log, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + 120
        for process, record in zip(self.processes, self.records, strict=True):
            while not record.with_suffix(".ready").exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"{kind} consumer did not start:\n{record.with_suffix('.log').read_text()}"
                    )
                time.sleep(0.05)

    def claimed(self) -> dict[str, float]:
        """Every id taken so far, with the wall-clock second its claim committed."""
        found: dict[str, float] = {}
        for record in self.records:
            if record.exists():
                for line in record.read_text().splitlines():
                    name, at = line.split()
                    found[name] = float(at)
        return found

    def check(self) -> None:
        """Raise if a consumer has exited (a benchmark would otherwise wait for it forever)."""
        for process, record in zip(self.processes, self.records, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"a consumer exited:\n{record.with_suffix('.log').read_text()}")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(
    done: Callable[[], bool], consumers: Consumers, what: str, timeout_s: float = 600, every_s: float = 0.005
) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        consumers.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not done after {timeout_s:.0f} s")
        time.sleep(every_s)


# Kinema.


class Kinema:
    def __init__(self, url: str, work: Path) -> None:
        self.db = Database(url)
        self.db.migrate()
        self.env = {
            "KINEMA_DATABASE_URL": url,
            "KINEMA_DATA_DIR": str(work / "data"),
            "KINEMA_PUBLIC_URL": "http://127.0.0.1:8000",
            "KINEMA_WORKERS": "1",
            "KINEMA_INTAKE_THREADS": "1",
        }
        self.work = work
        with self.db.write() as connection:
            self.accounts = [
                keys.open_account(connection, f"bench-{n}", 10**9, system_clock()).record.account_id
                for n in range(ACCOUNTS)
            ]

    def create(self, count: int) -> tuple[list[str], float]:
        """`count` tasks queued in one transaction, round the accounts; their ids and the commit."""
        made = []
        with self.db.write() as connection:
            now = system_clock()
            for n in range(count):
                new = NewTask(
                    model=MODEL,
                    param="{}",
                    input={"prompt": "a benchmark", "duration": "6", "resolution": "768P"},
                    callback_url=None,
                    price=1,
                    ready=True,
                )
                made.append(
                    lifecycle.create_task(connection, self.accounts[n % ACCOUNTS], new, now, 3_600_000).id
                )
        return made, time.time()

    def succeeded(self, ids: Sequence[str]) -> tuple[int, int | None]:
        """How many of `ids` succeeded, and the last ``completed_at`` among them."""
        query = select(func.count(), func.max(tasks.c.completed_at)).where(
            tasks.c.id.in_(ids), tasks.c.state == "success"
        )
        with self.db.read() as connection:
            count, last = connection.execute(query).one()
        return int(count), last

    def unfinished(self) -> int:
        """How many tasks are not finished, by the claim's index: a cheap look while consumers
        work, as pgqueuer's side counts its queue (every earlier run's tasks are finished)."""
        query = select(func.count()).select_from(tasks).where(tasks.c.state.in_(UNFINISHED_STATES))
        with self.db.read() as connection:
            return int(connection.execute(query).scalar_one())

    def throughput(self, workers: int, count: int) -> float:
        consumers = Consumers("kinema", workers, {}, self.env, self.work)
        try:
            ids, committed = self.create(count)
            wait_for(lambda: self.unfinished() == 0, consumers, f"{count} Kinema tasks", every_s=0.05)
            assert self.succeeded(ids)[0] == count
        finally:
            consumers.stop()
        _, last = self.succeeded(ids)
        assert last is not None
        return count / (last / 1000 - committed)

    def dispatch(self, count: int, warmup: int) -> Dispatch:
        consumers = Consumers("kinema", 1, {}, self.env, self.work)
        latencies = []
        try:
            for index in range(warmup + count):
                (task_id,), committed = self.create(1)

                def claimed(task_id: str = task_id) -> bool:
                    return task_id in consumers.claimed()

                def done(task_id: str = task_id) -> bool:
                    return self.succeeded([task_id])[0] == 1

                # The claim is watched in the record file, not in the database: a poll there
                # every 2 ms would take a share of the two cores the worker needs.
                wait_for(claimed, consumers, f"claim of {task_id}", 30, 0.002)
                wait_for(done, consumers, f"task {task_id}", 30, 0.01)
                if index >= warmup:
                    latencies.append(consumers.claimed()[task_id] - committed)
        finally:
            consumers.stop()
        return Dispatch(statistics.median(latencies) * 1e3, percentile(latencies, 0.95) * 1e3)

    def close(self) -> None:
        self.db.dispose()


# pgqueuer.


class Pgqueuer:
    def __init__(self, url: str, work: Path) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.work = work
        asyncio.run(self._install())

    @contextmanager
    def _queries(self) -> Iterator[tuple[asyncio.Runner, object]]:
        from pgqueuer import PsycopgDriver, Queries

        with asyncio.Runner() as runner:
            connection = runner.run(psycopg.AsyncConnection.connect(self.dsn, autocommit=True))
            try:
                yield runner, Queries(PsycopgDriver(connection))
            finally:
                runner.run(connection.close())

    async def _install(self) -> None:
        from pgqueuer import PsycopgDriver, Queries

        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as connection:
            await Queries(PsycopgDriver(connection)).install()

    def waiting(self) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            row = connection.execute("SELECT count(*) FROM pgqueuer").fetchone()
        assert row is not None
        return int(row[0])

    def throughput(self, consumers_count: int, count: int, batch_size: int) -> float:
        spec = {"dsn": self.dsn, "batch_size": str(batch_size)}
        consumers = Consumers("pgqueuer", consumers_count, spec, {}, self.work)
        try:
            with self._queries() as (runner, queries):
                runner.run(queries.enqueue([NOOP] * count, [None] * count, [0] * count))  # type: ignore[attr-defined]
                committed = time.time()
            with psycopg.connect(self.dsn, autocommit=True) as connection:

                def empty() -> bool:
                    row = connection.execute("SELECT count(*) FROM pgqueuer").fetchone()
                    return row is not None and row[0] == 0

                wait_for(empty, consumers, f"{count} pgqueuer jobs", every_s=0.01)
                done = time.time()
        finally:
            consumers.stop()
        return count / (done - committed)

    def dispatch(self, count: int, warmup: int) -> Dispatch:
        consumers = Consumers("pgqueuer", 1, {"dsn": self.dsn}, {}, self.work)
        latencies = []
        try:
            with self._queries() as (runner, queries):
                for index in range(warmup + count):
                    (job_id,) = runner.run(queries.enqueue(NOOP, None))  # type: ignore[attr-defined]
                    committed = time.time()
                    name = str(job_id)
                    wait_for(
                        lambda name=name: name in consumers.claimed(),
                        consumers,
                        f"job {name}",
                        timeout_s=30,
                        every_s=0.002,
                    )
                    # Not waiting for its completion to be logged: a job sent right after that
                    # waited about 2 s for its claim (the consumer's own look, not the notice).
                    if index >= warmup:
                        latencies.append(consumers.claimed()[name] - committed)
        finally:
            consumers.stop()
        return Dispatch(statistics.median(latencies) * 1e3, percentile(latencies, 0.95) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000, help="tasks (and jobs) per throughput run")
    parser.add_argument("--consumers", default="1,4,16", help="consumer processes, one run each")
    parser.add_argument("--dispatch", type=int, default=300, help="tasks (and jobs) timed one at a time")
    args = parser.parse_args()
    counts = [int(part) for part in args.consumers.split(",")]
    cores = len(os.sched_getaffinity(0))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}, load {load}")

    import pgqueuer

    with tempfile.TemporaryDirectory() as tmp, postgres_database(postgres_server("bench")) as url:
        work = Path(tmp)
        kinema = Kinema(url, work)
        anchor = Pgqueuer(url, work)
        with kinema.db.read() as connection:
            server = connection.execute(sqlalchemy.text("SHOW server_version")).scalar_one()
        print(f"PostgreSQL {server}, pgqueuer {pgqueuer.__version__} (psycopg {psycopg.__version__})")
        try:
            for count in counts:
                ours = kinema.throughput(count, args.tasks)
                theirs = anchor.throughput(count, args.tasks, batch_size=10)
                single = anchor.throughput(count, args.tasks, batch_size=1)
                ratio = ours / theirs
                met = "met" if ratio >= THROUGHPUT_TARGET else "not met"
                print(
                    f"throughput, {count} consumer processes, {args.tasks} tasks: kinema {ours:.0f}/s, "
                    f"pgqueuer {theirs:.0f}/s, ratio {ratio:.2f} (target >= {THROUGHPUT_TARGET}: {met}); "
                    f"pgqueuer one job at a time {single:.0f}/s, ratio {ours / single:.2f}"
                )
            ours_d = kinema.dispatch(args.dispatch, warmup=10)
            theirs_d = anchor.dispatch(args.dispatch, warmup=10)
        finally:
            kinema.close()
    met = "met" if ours_d.median_ms < DISPATCH_TARGET_MS else "not met"
    print(
        f"dispatch across processes, {args.dispatch} one at a time, commit to claim: "
        f"kinema median {ours_d.median_ms:.1f} ms, p95 {ours_d.p95_ms:.1f} ms; "
        f"pgqueuer median {theirs_d.median_ms:.1f} ms, p95 {theirs_d.p95_ms:.1f} ms; "
        f"ratio {ours_d.median_ms / theirs_d.median_ms:.2f} "
        f"(target median < {DISPATCH_TARGET_MS:.0f} ms: {met})"
    )


if __name__ == "__main__":
    main()
