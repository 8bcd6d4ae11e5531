"""`kinema serve` with the minimax engine, killed while MiniMax works: the upstream task is resumed."""

from __future__ import annotations

from pathlib import Path

import httpx
from tests.support.api import Api, seed_body
from tests.support.http import ImageHost
from tests.support.minimax import API_KEY, fake_minimax
from tests.support.polling import wait_for
from tests.support.process import kinema, serve, service_env


def test_a_crash_while_minimax_works_resumes_the_same_upstream_task(
    tmp_path: Path, database_url: str, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    data_dir = tmp_path / "data"
    image_url = image_server.add("/knights.jpg", sample_jpeg)
    with fake_minimax(hold=True) as fake:
        settings = {
            "KINEMA_ENGINE": "minimax",
            "KINEMA_MINIMAX_API_KEY": API_KEY,
            "KINEMA_MINIMAX_BASE_URL": fake.base_url,
            "KINEMA_MINIMAX_POLL_SECONDS": "0.1",
            # Faster than MiniMax's published limit, or the test would wait minutes for turns.
            "KINEMA_MINIMAX_RATE_LIMIT": "1000/second",
            "KINEMA_LEASE_SECONDS": "2",
            "KINEMA_ALLOW_PRIVATE_URLS": "true",
        }
        created = kinema(
            "keys", "create", "--name", "e2e", "--credits", "1000", env=service_env(data_dir, database_url, 0)
        )
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]

        with serve(data_dir, database_url, **settings) as served:
            with httpx.Client(base_url=served.base_url, timeout=30) as client:
                api = Api(client, key)
                task_id = api.create(seed_body(image_url))
                # MiniMax is Processing, and the task has been polled a few times.
                wait_for(lambda: len(fake.polls) >= 3, 60, "the upstream task to be polled")
            served.kill()
        (upstream_id,) = fake.tasks
        polls_before_restart = len(fake.polls)

        with (
            serve(data_dir, database_url, **settings) as served,
            httpx.Client(base_url=served.base_url, timeout=30) as client,
        ):
            wait_for(lambda: len(fake.polls) > polls_before_restart, 60, "polling after the restart")
            fake.hold = False
            api = Api(client, key)
            record = api.wait_state(task_id, "success", "fail", timeout_s=60)
            assert record["state"] == "success", (record, served.output())
            assert record["creditsConsumed"] == 30
            assert api.balance() == 1000 - 30

    assert len(fake.submissions) == 1
    assert {call.params["task_id"] for call in fake.polls} == {upstream_id}
    assert len(fake.of_kind("download")) == 1
    log = (data_dir / "serve.log").read_text(errors="replace")
    assert f"MiniMax task {upstream_id} submitted" in log
    assert f"resuming MiniMax task {upstream_id}" in log
    assert API_KEY not in log
