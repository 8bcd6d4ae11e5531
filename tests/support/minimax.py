"""A MiniMax stand-in on loopback: the three video endpoints as documented, and a CDN for the videos.

Each test scripts it: the statuses a task goes through, base_resp codes to answer instead of the
real answer, HTTP faults, and a hold that keeps tasks "Processing" until released. It records
every request with its arrival time on the fake's clock (`time.monotonic` unless the test gives one,
such as the hand-moved clock the engine waits on), so tests count submissions and polls and
measure rates and backoffs.
"""

from __future__ import annotations

import copy
import json
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from kinema.domain.video import FrameSize
from kinema.media.encode import H264Writer

API_KEY = "mm-test-key-0123456789abcdef"
SUCCESS_PATH = ["Preparing", "Queueing", "Processing", "Processing", "Success"]
VIDEO_SIZE = FrameSize(320, 180)
VIDEO_FPS = 25
VIDEO_FRAMES = 25

#: What MiniMax says with each code (its texts, roughly).
MESSAGES = {
    0: "success",
    1002: "rate limit exceeded(RPM)",
    1004: "login fail: Please carry the API secret key in the 'Authorization' field of the request header",
    1008: "insufficient balance",
    1026: "input new_sensitive",
    1027: "output new_sensitive",
    2013: "invalid params, first_frame_image is invalid",
    2049: "invalid api key",
}


@cache
def sample_video() -> bytes:
    """A real H.264 MP4, 1 s of 320x180 at 25 fps, that brightens from its first frame to its last."""
    ramp = np.linspace(0, 60, VIDEO_SIZE.width, dtype=np.float32)[np.newaxis, :, np.newaxis]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sample.mp4"
        with H264Writer(path, VIDEO_SIZE, VIDEO_FPS) as writer:
            for index in range(VIDEO_FRAMES):
                level = 30 + index * 7
                frame = np.broadcast_to(ramp + level, (VIDEO_SIZE.height, VIDEO_SIZE.width, 3))
                writer.write_rgb(np.ascontiguousarray(frame.clip(0, 255).astype(np.uint8)))
        return path.read_bytes()


@dataclass(frozen=True)
class Call:
    """One request the fake received."""

    at: float  #: The fake's clock on arrival, in seconds.
    kind: str  #: "submit", "query", "retrieve" or "download".
    authorization: str | None
    params: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class FakeMinimax:
    api_key: str = API_KEY
    base_url: str = ""
    video: bytes = b""
    #: The statuses a task answers at its successive polls; the last one repeats.
    statuses: list[str] = field(default_factory=lambda: list(SUCCESS_PATH))
    #: While True, a task that would move past "Processing" stays there.
    hold: bool = False
    #: base_resp codes answered instead of the real answer, one per call, by kind of call.
    codes: dict[str, list[int]] = field(default_factory=dict)
    #: HTTP faults answered first, one per call, by kind: an HTTP status, or "drop" (close without answering).
    faults: dict[str, list[int | str]] = field(default_factory=dict)
    fail_message: str = "video generation failed: internal model error"
    #: Texts answered with codes, instead of MiniMax's usual ones (`MESSAGES`).
    messages: dict[int, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    #: Seconds, for the arrival times of calls.
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    #: Upstream task id -> how many polls have moved it along.
    tasks: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create_task(self) -> str:
        """A task as if submitted earlier (by a worker that then died)."""
        task_id = str(secrets.randbelow(10**15) + 10**14)
        with self.lock:
            self.tasks[task_id] = 0
        return task_id

    def of_kind(self, *kinds: str) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.kind in kinds]

    @property
    def submissions(self) -> list[Call]:
        return self.of_kind("submit")

    @property
    def polls(self) -> list[Call]:
        return self.of_kind("query")

    def video_requests(self) -> list[Call]:
        """The requests MiniMax's video rate limit counts: submissions and polls."""
        return self.of_kind("submit", "query")

    # Answers.

    def answer(self, kind: str, params: dict[str, str], body: dict[str, Any] | None) -> tuple[int, Any]:
        with self.lock:
            faults = self.faults.get(kind)
            if faults:
                return faults.pop(0), None
            codes = self.codes.get(kind)
            code = codes.pop(0) if codes else 0
        if kind == "download":
            return 200, self.video
        if code:
            return 200, _refused(code, self.messages.get(code))
        if kind == "submit":
            return 200, {"task_id": self.create_task(), "base_resp": _base(0)}
        if kind == "query":
            return 200, self._query(params.get("task_id", ""))
        return 200, self._retrieve(params.get("file_id", ""))

    def _query(self, task_id: str) -> dict[str, Any]:
        with self.lock:
            if task_id not in self.tasks:
                return _refused(2013, "invalid params, task_id not found")
            step = self.tasks[task_id]
            status = self.statuses[min(step, len(self.statuses) - 1)]
            if self.hold and status in ("Success", "Fail"):
                status = "Processing"
            else:
                self.tasks[task_id] = step + 1
        answer: dict[str, Any] = {"task_id": task_id, "status": status, "base_resp": _base(0)}
        if status == "Success":
            answer |= {
                "file_id": f"file{task_id}",
                "video_width": VIDEO_SIZE.width,
                "video_height": VIDEO_SIZE.height,
            }
        elif status == "Fail":
            answer["base_resp"] = {"status_code": 0, "status_msg": self.fail_message}
        return answer

    def _retrieve(self, file_id: str) -> dict[str, Any]:
        return {
            "file": {
                "file_id": file_id,
                "bytes": len(self.video),
                "filename": "output.mp4",
                "purpose": "video_generation",
                "download_url": f"{self.base_url}/cdn/{file_id}.mp4?Expires=9999999999&Signature=abc",
            },
            "base_resp": _base(0),
        }


def _base(code: int, message: str | None = None) -> dict[str, Any]:
    return {"status_code": code, "status_msg": message or MESSAGES.get(code, f"error {code}")}


def _refused(code: int, message: str | None = None) -> dict[str, Any]:
    return {"task_id": "", "base_resp": _base(code, message)}


_KINDS = {
    ("POST", "/v1/video_generation"): "submit",
    ("GET", "/v1/query/video_generation"): "query",
    ("GET", "/v1/files/retrieve"): "retrieve",
}


@contextmanager
def fake_minimax(**script: Any) -> Iterator[FakeMinimax]:
    """Serve a `FakeMinimax` (fields from `script`) on a loopback port until the block ends."""
    clock = script.pop("clock", time.monotonic)
    # A copy: the scripted lists are used up, and a parametrised test passes the same ones again.
    fake = FakeMinimax(**({"video": sample_video(), "clock": clock} | copy.deepcopy(script)))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            arrived = fake.clock()
            split = urlsplit(self.path)
            params = {name: values[0] for name, values in parse_qs(split.query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.loads(raw) if raw else None
            kind = "download" if split.path.startswith("/cdn/") else _KINDS.get((method, split.path))
            if kind is None:
                self.send_error(404)
                return
            authorization = self.headers.get("Authorization")
            with fake.lock:
                fake.calls.append(Call(arrived, kind, authorization, params, body))
            if kind != "download" and authorization != f"Bearer {fake.api_key}":
                self._send(200, _refused(1004))
                return
            status, answer = fake.answer(kind, params, body)
            if status == "drop":
                self.close_connection = True
                return
            self._send(int(status), answer)

        def _send(self, status: int, answer: Any) -> None:
            if isinstance(answer, bytes):
                data, content_type = answer, "video/mp4"
            elif answer is None:
                data, content_type = b'{"error":"unavailable"}', "application/json"
            else:
                data, content_type = json.dumps(answer).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def busiest_window(times: list[float], window_s: float) -> int:
    """The most requests that arrived within any `window_s` seconds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best
