"""The chaos of `make chaos`, short: two API processes and four workers on PostgreSQL, Redis and S3,
killed at random while forty tasks run; every task still succeeds once, charged once, its video
in the bucket and its callback delivered, and nothing is left behind.

The seed is printed; ``CHAOS_SEED=N`` replays a run's kills.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from pathlib import Path

from bench.chaos import Plan, run
from tests.support.databases import postgres_url, skip_without_postgres
from tests.support.redis_server import redis_url

#: Forty tasks over 30 s of kills, everything done in 90 s at most.
PLAN = Plan(tasks=40, seconds=30, settle_s=30, accounts=4, kill_every_s=(1.0, 2.5), clients=6, deadline=90)


def test_every_task_ends_right_while_processes_are_killed(tmp_path: Path) -> None:
    skip_without_postgres()
    redis = redis_url()
    server = postgres_url()
    assert server is not None
    seed = int(os.environ.get("CHAOS_SEED") or secrets.randbelow(10**6))
    report = run(replace(PLAN, seed=seed), server, redis, tmp_path)
    print(report.summary())
    assert report.ok, report.summary()
    assert sum(report.kills.values()) > 0, "nothing was killed: the test proved nothing"
