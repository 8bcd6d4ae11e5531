"""The README's examples run as written: curl and Python against `kinema serve`, and the engine
example of docs/motion-engine.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import av
import cv2
import httpx
import pytest
from standardwebhooks import WebhookVerificationError
from tests.conftest import textured_image
from tests.support.api import Api
from tests.support.callbacks import finished_task, make_deliverer
from tests.support.clock import FakeClock
from tests.support.http import callback_receiver
from tests.support.process import Served

from kinema.store.database import Database
from kinema.webhooks import secrets

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEFAULT_BASE = "http://127.0.0.1:8000"


def _blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.DOTALL)


def test_curl_example(served: tuple[Served, str], tmp_path: Path) -> None:
    running, key = served
    commands = next(block for block in _blocks(README, "sh") if "curl" in block)
    script = commands.replace(DEFAULT_BASE, running.base_url)
    create, poll = script.split("\n\ncurl", 1)
    create = re.sub(r"^KEY=.*$", f"KEY={key}", create, flags=re.MULTILINE)
    created = subprocess.run(["bash", "-c", create], capture_output=True, text=True, check=True, timeout=60)
    answer = json.loads(created.stdout)
    assert answer["code"] == 200, answer
    task_id = answer["data"]["taskId"]
    with httpx.Client(base_url=running.base_url) as client:
        Api(client, key).wait_state(task_id, "success", timeout_s=120)
    poll = "curl" + poll.split("\n#", 1)[0].replace("5f0c...", task_id).replace("$KEY", key)
    polled = subprocess.run(["bash", "-c", poll], capture_output=True, text=True, check=True, timeout=60)
    record = json.loads(polled.stdout)["data"]
    assert record["state"] == "success"
    assert json.loads(record["resultJson"])["resultUrls"][0].startswith(running.base_url + "/files/")


def test_python_example(served: tuple[Served, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    running, key = served
    example = _blocks(README, "python")[0]
    monkeypatch.setenv("KINEMA_BASE_URL", running.base_url)
    monkeypatch.setenv("KINEMA_API_KEY", key)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(README), "exec"), {})
    with av.open(str(tmp_path / "lake.mp4")) as container:
        assert container.streams.video[0].codec_context.width == 1366
        assert sum(1 for _ in container.decode(video=0)) == 150


def test_sdk_example(
    served: tuple[Served, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_jpeg: bytes
) -> None:
    running, key = served
    example = next(block for block in _blocks(README, "python") if "from kinema.client import" in block)
    assert _blocks(README, "python").index(example) > 0  # the httpx example stays first
    monkeypatch.setenv("KINEMA_BASE_URL", running.base_url)
    monkeypatch.setenv("KINEMA_API_KEY", key)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(sample_jpeg)
    exec(compile(example, str(README), "exec"), {})
    with av.open(str(tmp_path / "harbour.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.width) == ("h264", 1366)
        assert sum(1 for _ in container.decode(video=0)) == 150


def test_engine_example_renders_a_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    guide = ROOT / "docs" / "motion-engine.md"
    example = _blocks(guide, "python")[0]
    cv2.imwrite(str(tmp_path / "photo.jpg"), textured_image(1280, 720))
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(guide), "exec"), {})
    with av.open(str(tmp_path / "lighthouse.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1366, 768)
        assert sum(1 for _ in container.decode(video=0)) == 150


def test_upload_example(served: tuple[Served, str], tmp_path: Path, sample_jpeg: bytes) -> None:
    running, key = served
    upload = next(block for block in _blocks(README, "sh") if "file-stream-upload" in block)
    (tmp_path / "photo.jpg").write_bytes(sample_jpeg)
    command = upload.replace(DEFAULT_BASE, running.base_url).replace("$KEY", key)
    done = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60
    )
    answer = json.loads(done.stdout)
    assert answer["success"] is True, answer
    assert answer["data"]["filePath"] == "images/photo.jpg"
    with httpx.Client(base_url=running.base_url) as client:
        api = Api(client, key)
        task_id = api.create(
            {
                "model": "hailuo/2-3-image-to-video-standard",
                "input": {"prompt": "[Zoom in]", "image_url": answer["data"]["downloadUrl"]},
            }
        )
        assert api.wait_state(task_id, "success", "fail", timeout_s=120)["state"] == "success"


def test_callback_receiver_example(tmp_path: Path, database_url: str) -> None:

    example = next(block for block in _blocks(README, "python") if "def verify" in block)
    db = Database(database_url)
    clock = FakeClock()
    with callback_receiver() as receiver:
        account_id, task_id = finished_task(db, clock, receiver.url)
        with db.write() as connection:
            secret = secrets.ensure_secret(connection, account_id, clock())
        assert make_deliverer(db, clock).run_once()
    db.dispose()
    namespace: dict[str, object] = {}
    exec(compile(example.replace('"whsec_..."', repr(secret)), str(README), "exec"), namespace)
    verify = namespace["verify"]
    (request,) = receiver.received
    assert verify(request.body, request.headers)["data"]["taskId"] == task_id  # type: ignore[operator]
    with pytest.raises(WebhookVerificationError):
        verify(request.body.replace(b"success", b"failure"), request.headers)  # type: ignore[operator]


def test_command_line_example(served: tuple[Served, str], tmp_path: Path, sample_jpeg: bytes) -> None:
    """The README's shell session, from a folder laid out as after `make run`."""
    running, key = served
    block = next(block for block in _blocks(README, "sh") if "kinema generate" in block)
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "local-key.txt").write_text(key + "\n")
    (project / "photo.jpg").write_bytes(sample_jpeg)
    (project / ".venv").symlink_to(Path(sys.executable).parents[1])
    env = {name: value for name, value in os.environ.items() if not name.startswith("KINEMA_")}
    script = block.replace(DEFAULT_BASE, running.base_url)
    first, rest = script.split("kinema status", 1)
    made = subprocess.run(
        ["bash", "-ec", first],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    task_id = re.search(r"^task ([0-9a-f]{32})$", made.stderr, flags=re.MULTILINE)
    assert task_id is not None, made.stderr
    assert (project / "harbour.mp4").read_bytes()[4:8] == b"ftyp"
    rest = first.split("kinema generate", 1)[0] + "kinema status" + rest.replace("5f0c...", task_id[1])
    shown = subprocess.run(
        ["bash", "-ec", rest], cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^state\s+success \(100%\)$", shown.stdout, flags=re.MULTILINE), shown.stdout
    assert f"{task_id[1]}\tsuccess\t100%\t30\t" in shown.stdout
    assert shown.stdout.endswith("\n70\n")
