"""The command line as a client of a live `kinema serve`: generate, status, tasks, credits, and
one clear line for a refused key or an unreachable server."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import av
import httpx
import pytest
from tests.support.api import Api, seed_body
from tests.support.process import KINEMA, Served, kinema


def client_env(base_url: str | None = None, key: str | None = None) -> dict[str, str]:
    """The user's environment, with the client's two variables (and no server settings)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KINEMA_")}
    env |= {"COLUMNS": "120", "NO_COLOR": "1"}
    if base_url is not None:
        env["KINEMA_BASE_URL"] = base_url
    if key is not None:
        env["KINEMA_API_KEY"] = key
    return env


def test_generate_then_status_tasks_and_credits(
    served: tuple[Served, str], tmp_path: Path, sample_jpeg: bytes
) -> None:
    running, key = served
    env = client_env(running.base_url, key)
    (tmp_path / "photo.jpg").write_bytes(sample_jpeg)

    done = kinema(
        "generate",
        "photo.jpg",
        "--prompt",
        "[Push in] a lake at dawn",
        "-o",
        "lake.mp4",
        env=env,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "lake.mp4\n"
    assert "Traceback" not in done.stderr
    task_id = re.search(r"^task ([0-9a-f]{32})$", done.stderr, flags=re.MULTILINE)
    assert task_id is not None, done.stderr
    assert re.search(
        rf"^wrote lake\.mp4: task {task_id[1]}, 30 credits, made in \d+\.\d s$", done.stderr, re.MULTILINE
    )
    with av.open(str(tmp_path / "lake.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert container.duration is not None
        assert container.duration / av.time_base == pytest.approx(6.0, abs=0.05)
        assert (stream.codec_context.width, stream.codec_context.height) == (1366, 768)
        assert sum(1 for _ in container.decode(video=0)) == 150

    status = kinema("status", task_id[1], env=env)
    assert status.returncode == 0, status.stderr
    assert re.search(r"^state\s+success \(100%\)$", status.stdout, re.MULTILINE), status.stdout
    assert re.search(r"^prompt\s+\[Push in\] a lake at dawn$", status.stdout, re.MULTILINE), status.stdout
    raw = kinema("status", task_id[1], "--json", env=env)
    record = json.loads(raw.stdout)
    assert (record["taskId"], record["state"], record["creditsConsumed"]) == (task_id[1], "success", 30)

    listed = kinema("tasks", env=env)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"{task_id[1]}\s.*success\s.*100%", listed.stdout), listed.stdout
    none = kinema("tasks", "--state", "fail", env=env)
    assert (none.returncode, none.stdout, none.stderr.strip()) == (0, "", "no tasks in state fail")

    balance = kinema("credits", "--base-url", running.base_url, "--api-key", key, env=client_env())
    assert (balance.returncode, balance.stdout) == (0, "70\n"), balance.stderr
    added = kinema("credits", "add", key, "5", env=running.env)
    assert (added.returncode, added.stdout) == (0, "75\n"), added.stderr
    assert kinema("credits", env=env).stdout == "75\n"


def in_terminal(*args: str, env: dict[str, str]) -> str:
    """What `kinema ARGS` shows in a terminal (a pseudo-terminal), escape codes taken out."""
    leader, follower = pty.openpty()
    terminal = {"stdin": follower, "stdout": follower, "stderr": follower}
    process = subprocess.Popen([str(KINEMA), *args], env=env, **terminal)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command ended and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(60) == 0
    text = b"".join(chunks).decode()
    return re.sub(r"\x1b\[[0-9;]*m", "", text).replace("\r\n", "\n")


def test_tasks_fit_80_columns_in_a_terminal_and_are_plain_columns_when_piped(
    served: tuple[Served, str],
) -> None:
    running, key = served
    with httpx.Client(base_url=running.base_url) as client:
        api = Api(client, key)
        plain = seed_body(f"{running.base_url}/samples/sample.jpg", prompt="[Pan left] a lake at dawn")
        del plain["input"]["duration"], plain["input"]["resolution"], plain["callBackUrl"]
        made = api.create(plain)
        broken = api.create(seed_body("http://127.0.0.1:9/gone.jpg", prompt="gone"))
        canceled = api.create(seed_body(f"{running.base_url}/samples/sample.jpg", prompt="never mind"))
        assert api.post("/api/v1/jobs/cancel", {"taskId": canceled})["code"] == 200
        api.wait_state(made, "success", timeout_s=120)
        api.wait_state(broken, "fail")
    env = client_env(running.base_url, key) | {"COLUMNS": "80"}

    piped = kinema("tasks", env=env)
    assert piped.returncode == 0, piped.stderr
    header, *lines = piped.stdout.splitlines()
    assert header.split("\t") == [
        *("task_id", "state", "progress", "credits", "created_utc"),
        *("took_s", "model", "settings", "note"),
    ]
    rows = {fields[0]: fields for fields in (line.split("\t") for line in lines)}
    assert set(rows) == {made, broken, canceled}
    assert rows[made][1:4] == ["success", "100%", "30"]
    assert rows[made][6:] == ["hailuo/2-3-image-to-video-standard", "6 s 768P", "[Pan left] a lake at dawn"]
    assert rows[broken][1] == "fail"
    assert rows[broken][8].startswith("422: input.image_url"), rows[broken]
    assert rows[canceled][1] == "canceled"
    assert rows[canceled][3] == "0"

    shown = in_terminal("tasks", env=env)
    assert all(len(line) <= 80 for line in shown.splitlines()), shown
    assert re.search(rf"^{made}  success\s+30  \d{{4}}-\d\d-\d\d \d\d:\d\d$", shown, re.MULTILINE), shown
    assert "  hailuo/2-3-image-to-video-standard · 6 s · 768P · made in " in shown
    assert "\n  [Pan left] a lake at dawn\n" in shown
    assert re.search(rf"^{broken}  fail\s+0 ", shown, re.MULTILINE), shown
    assert "\n  422: input.image_url" in shown
    assert re.search(rf"^{canceled}  canceled\s+0 ", shown, re.MULTILINE), shown

    status = kinema("status", canceled, env=env)
    assert re.search(r"^state\s+canceled \(0%\)$", status.stdout, re.MULTILINE), status.stdout

    as_json = json.loads(kinema("tasks", "--json", env=env).stdout)
    assert [record["taskId"] for record in as_json] == [canceled, broken, made]


def test_credits_in_a_terminal_say_the_balance_once(served: tuple[Served, str]) -> None:
    running, key = served
    shown = in_terminal("credits", env=client_env(running.base_url, key))
    assert shown == f"100 credits at {running.base_url}\n"


def test_a_refused_key_is_one_clear_line(
    served: tuple[Served, str], tmp_path: Path, sample_jpeg: bytes
) -> None:
    running, _key = served
    env = client_env(running.base_url, "kn_not_a_key")
    (tmp_path / "photo.jpg").write_bytes(sample_jpeg)
    for args in (("generate", "photo.jpg", "--prompt", "x"), ("credits",), ("status", "0" * 32), ("tasks",)):
        done = kinema(*args, env=env, cwd=tmp_path)
        assert (done.returncode, done.stderr, done.stdout) == (
            1,
            "error: the API key was refused (401)\n",
            "",
        ), args
    assert not list(tmp_path.glob("*.mp4"))


def test_an_unreachable_server_is_one_clear_line(tmp_path: Path, sample_jpeg: bytes) -> None:
    (tmp_path / "photo.jpg").write_bytes(sample_jpeg)
    env = client_env("http://127.0.0.1:9", "kn_any")
    for args in (("generate", "photo.jpg", "--prompt", "x"), ("credits",), ("status", "0" * 32), ("tasks",)):
        done = kinema(*args, env=env, cwd=tmp_path)
        expected = "error: cannot reach http://127.0.0.1:9: connection refused\n"
        assert (done.returncode, done.stderr, done.stdout) == (1, expected, ""), args
    missing = kinema("credits", env=client_env("http://127.0.0.1:9"))
    assert (missing.returncode, missing.stderr) == (
        1,
        "error: no API key: pass --api-key or set KINEMA_API_KEY\n",
    )
