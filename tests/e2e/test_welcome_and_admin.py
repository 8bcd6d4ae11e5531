"""`make run`'s welcome, the key and credit commands, and workers in their own process."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import httpx
from tests.support.api import Api, seed_body
from tests.support.http import ImageHost
from tests.support.live import free_port
from tests.support.polling import wait_for
from tests.support.process import KINEMA, Served, kinema, serve, service_env


def test_welcome_prints_a_key_and_an_example_that_works_as_pasted(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir, database_url, "--welcome") as served:
        wait_for(lambda: "Then poll it" in served.output(), 30, "the welcome")
        printed = served.output()
        key = re.search(r"^(kn_\S+)$", printed, flags=re.MULTILINE)
        assert key is not None, printed
        assert (data_dir / "local-key.txt").read_text().strip() == key.group(1)
        command = printed.split("Create a task:\n", 1)[1].split("\n\n", 1)[0]
        created = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, check=True, timeout=60
        )
        answer = json.loads(created.stdout)
        assert answer["code"] == 200, answer
        with httpx.Client(base_url=served.base_url) as client:
            api = Api(client, key.group(1))
            api.wait_state(answer["data"]["taskId"], "success", timeout_s=120)
            assert api.balance() == 1000 - 30

    # A second run keeps the same key.
    with serve(data_dir, database_url, "--welcome") as served:
        wait_for(lambda: "Then poll it" in served.output(), 30, "the welcome")
        assert served.output().count(key.group(1)) >= 4


def test_make_run_on_another_port_gives_results_whose_links_work(tmp_path: Path, database_url: str) -> None:
    """`KINEMA_PORT=... make run` with no KINEMA_PUBLIC_URL: every printed and returned link
    names the port served, so the result downloads."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    env = service_env(data_dir, database_url, port)
    del env["KINEMA_PUBLIC_URL"]
    served = Served(["--welcome"], env, data_dir / "serve.log")
    try:
        served.wait_ready()
        wait_for(lambda: "Then poll it" in served.output(), 30, "the welcome")
        printed = served.output()
        assert f"Kinema is starting on http://127.0.0.1:{port}" in printed
        assert ":8000" not in printed
        create = printed.split("Create a task:\n", 1)[1].split("\n\n", 1)[0]
        answer = json.loads(_bash(create))
        assert answer["code"] == 200, answer
        poll = printed.split("Then poll it with the taskId it answers:\n", 1)[1].split("\n", 1)[0]
        poll = poll.replace("TASK_ID", answer["data"]["taskId"])

        def finished() -> dict[str, object] | None:
            record = json.loads(_bash(poll))["data"]
            return record if record["state"] in ("success", "fail") else None

        record = wait_for(finished, 120, "the task to finish")
        assert record["state"] == "success", record
        assert isinstance(record["resultJson"], str)
        video_url = json.loads(record["resultJson"])["resultUrls"][0]
        assert video_url.startswith(f"http://127.0.0.1:{port}/files/")
        video = httpx.get(video_url, timeout=30)
        assert video.status_code == 200
        assert video.headers["content-type"] == "video/mp4"
        assert video.content[4:8] == b"ftyp"
        assert "warning" not in printed
    finally:
        served.stop()


def test_a_public_url_other_than_the_address_served_is_reported(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    elsewhere = "http://127.0.0.1:8000"
    with serve(tmp_path / "data", database_url, port=port, KINEMA_PUBLIC_URL=elsewhere) as served:
        wait_for(lambda: "warning:" in served.output(), 30, "the warning")
        assert (
            f"result links start with KINEMA_PUBLIC_URL=http://127.0.0.1:8000, while this server listens "
            f"on http://127.0.0.1:{port}"
        ) in " ".join(served.output().split())


def test_a_busy_port_is_one_clear_line_before_anything_else(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = service_env(tmp_path / "data", database_url, port)
        (tmp_path / "data").mkdir()
        busy = kinema("serve", "--welcome", env=env)
    assert busy.returncode == 1
    assert busy.stdout == ""
    assert " ".join(busy.stderr.split()) == (
        f"error: port {port} on 127.0.0.1 is already in use: stop what uses it, or choose another port "
        f"with --port or KINEMA_PORT (for example KINEMA_PORT={port + 1} make run)"
    )
    assert not (tmp_path / "data" / "local-key.txt").exists()


def _bash(command: str) -> str:
    ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True, timeout=60)
    return ran.stdout


def test_keys_and_credits_commands(tmp_path: Path, database_url: str) -> None:
    env = service_env(tmp_path / "data", database_url, 0)
    created = kinema("keys", "create", "--name", "alice", "--credits", "50", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"kn_[A-Za-z0-9_-]{43}", key)

    listed = kinema("keys", "list", env=env)
    assert listed.returncode == 0
    assert key[:10] in listed.stderr
    assert key not in listed.stdout + listed.stderr

    added = kinema("credits", "add", key, "25", env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "75"
    assert kinema("credits", "add", key, "-100", env=env).returncode == 1

    secret = kinema("webhooks", "secret", "create", key, env=env)
    assert secret.returncode == 0, secret.stderr
    assert secret.stdout.strip().startswith("whsec_")

    port = free_port()
    with (
        serve(tmp_path / "data", database_url, port=port) as served,
        httpx.Client(base_url=served.base_url) as client,
    ):
        api = Api(client, key)
        assert api.balance() == 75
        assert api.get("/api/v1/webhooks/secret")["data"]["secret"] == secret.stdout.strip()
        revoked = kinema("keys", "revoke", key[:10], env=env)
        assert revoked.returncode == 0, revoked.stderr
        assert api.get("/api/v1/chat/credit")["code"] == 401

    unknown = kinema("keys", "revoke", "kn_nothing", env=env)
    assert unknown.returncode == 1
    assert "no key matches" in unknown.stderr


def test_a_separate_worker_process_runs_the_tasks(
    tmp_path: Path, database_url: str, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    data_dir = tmp_path / "data"
    url = image_server.add("/knights.jpg", sample_jpeg)
    with serve(data_dir, database_url, "--workers", "0", KINEMA_ALLOW_PRIVATE_URLS="true") as served:
        key = kinema("keys", "create", "--name", "w", "--credits", "100", env=served.env).stdout.strip()
        with httpx.Client(base_url=served.base_url) as client:
            api = Api(client, key)
            task_id = api.create(seed_body(url, duration="6", resolution="768P"))
            assert api.record(task_id)["state"] == "waiting"
            worker = subprocess.Popen(
                [str(KINEMA), "worker"], env=served.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                assert api.wait_state(task_id, "success", "fail", timeout_s=120)["state"] == "success"
                assert client.get("/readyz").json()["data"]["workers"] == "ok"
            finally:
                worker.terminate()
                worker.wait(30)
