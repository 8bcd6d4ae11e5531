"""Open descriptors stay flat however threads come and go around the database.

The thread pool that serves requests retires idle threads and starts new ones under the next
burst; whatever the database keeps per reader must not outlive the reader.
"""

from __future__ import annotations

import os
import threading

from kinema.accounts import keys
from kinema.store.database import Database

T0 = 1_700_000_000_000
BURSTS = 6
THREADS = 24
#: Descriptors the database may hold between bursts: fewer than two per reader of one burst.
KEPT_DESCRIPTORS = 40


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def burst_of_reads(db: Database, key_hash: str) -> None:
    """`THREADS` new threads reading at the same moment, each once, then gone."""
    together = threading.Barrier(THREADS)
    answers: list[bool] = []

    def read() -> None:
        together.wait(timeout=30)
        answers.append(db.first(keys.statements.LIVE_KEY, {"key_hash": key_hash}) is not None)

    threads = [threading.Thread(target=read) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [True] * THREADS


def test_reads_from_threads_that_come_and_go_leave_no_descriptors_behind(db: Database) -> None:
    with db.write() as connection:
        secret = keys.open_account(connection, "reader", 0, T0).secret
    key_hash = keys.hash_key(secret)
    before = open_descriptors()
    counts = []
    for _ in range(BURSTS):
        burst_of_reads(db, key_hash)
        counts.append(open_descriptors())
    # Each burst opens fresh threads: a connection kept per thread would add THREADS of them,
    # two descriptors each, every burst. What stays is a few idle connections, and on SQLite
    # the descriptors it keeps for reuse while another connection holds the file's locks (no
    # more than the most readers at once).
    assert max(counts) <= before + KEPT_DESCRIPTORS, (before, counts)
    db.dispose()
    assert open_descriptors() <= before + 2, (before, counts)
