"""The consumer processes `bench.queue` starts: a Kinema worker, or a pgqueuer queue manager.

``python -m bench._consumers kinema SPEC`` runs `Worker` as ``kinema worker`` builds it (from
the ``KINEMA_*`` variables it is given), on an engine that finishes at once; ``python -m
bench._consumers pgqueuer SPEC`` runs pgqueuer's `QueueManager` with a no-op entrypoint. SPEC is
JSON: ``{"record": PATH}``, plus ``"dsn"`` and ``"batch_size"`` (10 is pgqueuer's own) for
pgqueuer. Each writes, per task or job it takes, a line ``ID UNIX_SECONDS`` to the record file
the moment its claim has committed (the time is the machine's wall clock, which every process
shares), and creates ``PATH.ready`` once it listens. SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from kinema.domain.video import Capability

NOOP = "noop"


def _record(out: TextIO, name: str) -> None:
    out.write(f"{name} {time.time():.6f}\n")
    out.flush()


def kinema(spec: dict[str, Any]) -> None:
    from tests.support.engines import INFO, InstantEngine

    from kinema import runtime
    from kinema.domain.clock import system_clock
    from kinema.settings import Settings
    from kinema.tasks import lifecycle

    class AnyInputEngine(InstantEngine):
        """The instant engine, taking tasks with no image too: nothing is decoded per task."""

        info = dataclasses.replace(
            INFO, capabilities=frozenset({Capability.IMAGE_TO_VIDEO, Capability.TEXT_TO_VIDEO})
        )

    record = Path(spec["record"])
    out = record.open("a")
    claim_next = lifecycle.claim_next

    def recorded(*args: Any, **kwargs: Any) -> lifecycle.Claim | None:
        claim = claim_next(*args, **kwargs)
        if claim is not None:
            _record(out, claim.task.id)
        return claim

    # The worker reaches the use-case through its module: this sees every claim it makes.
    lifecycle.claim_next = recorded
    settings = Settings()
    db = runtime.open_database(settings)
    worker = runtime.build_worker(
        settings, db, clock=system_clock, engines={settings.engine: AnyInputEngine()}
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.start()
    listener = worker._listener  # a benchmark waits for it to listen
    deadline = time.monotonic() + 30
    while listener is not None and not listener.listening and time.monotonic() < deadline:
        time.sleep(0.01)
    record.with_suffix(".ready").touch()
    stop.wait()
    worker.stop()
    db.dispose()
    out.close()


def pgqueuer(spec: dict[str, Any]) -> None:
    import psycopg
    from pgqueuer import PsycopgDriver, Queries, QueueManager
    from pgqueuer.models import Job

    record = Path(spec["record"])

    async def run() -> None:
        connection = await psycopg.AsyncConnection.connect(spec["dsn"], autocommit=True)
        manager = QueueManager(Queries(PsycopgDriver(connection)))
        out = record.open("a")

        @manager.entrypoint(NOOP)
        async def noop(job: Job) -> None:
            _record(out, str(job.id))

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, manager.shutdown.set)
        running = asyncio.create_task(manager.run(batch_size=int(spec.get("batch_size", 10))))
        # It listens once `run` has checked the schema and connected its listener.
        await asyncio.sleep(1.0)
        record.with_suffix(".ready").touch()
        await running
        out.close()
        await connection.close()

    asyncio.run(run())


if __name__ == "__main__":
    kind, spec = sys.argv[1], json.loads(sys.argv[2])
    {"kinema": kinema, "pgqueuer": pgqueuer}[kind](spec)
