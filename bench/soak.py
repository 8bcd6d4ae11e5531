"""Soak: minutes of mixed traffic against a real ``kinema serve``, on loopback, with workers busy.

``python -m bench.soak [--seconds 600] [--database sqlite|postgres]`` starts the service as
``make run`` does (two generation workers, the motion engine), an image host and a callback
receiver of its own, all on 127.0.0.1, then keeps a few clients busy until the time is up (or a
request budget is spent): recordInfo, createTask (some with callbacks), uploads by all three
routes, live streams, cancels, balances and listings. With ``--database postgres`` the service
runs on a fresh PostgreSQL database (``KINEMA_SOAK_POSTGRES_URL``, else
``KINEMA_TEST_POSTGRES_URL``) with its rate limits in Redis (``KINEMA_SOAK_REDIS_URL``, else
``KINEMA_TEST_REDIS_URL``).

It prints every error (there must be none), p50 and p99 per route, and the server's open
descriptors, threads and resident memory sampled every 10 s (more often in a short run: at least
30 samples). It exits 1 if anything failed or if descriptors, threads or memory grew by more than
10% between the end of the warm-up and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
from tests.support.http import loopback

from bench._databases import run_database
from kinema.accounts import keys
from kinema.domain.clock import system_clock
from kinema.storage.own import read_sample
from kinema.store.database import Database

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EVERY_S = 10.0
#: At least this many samples in a run, however short: a peak over a handful of samples is
#: only the instant each happened to catch (threads and memory follow the work in flight).
SAMPLES_AT_LEAST = 30
#: Rows of the resource table printed (every sample is judged).
PRINTED_SAMPLES = 12
#: How much of the run is warm-up, whose resource samples are not judged.
WARMUP_SHARE = 0.3
GROWTH_ALLOWED = 0.10
MODEL = "hailuo/2-3-image-to-video-standard"

#: What one client does, with how often: mostly polling, as real clients do.
ACTIONS: dict[str, int] = {
    "recordInfo": 40,
    "createTask": 10,
    "createTask+callback": 5,
    "balance": 8,
    "list": 8,
    "upload stream": 6,
    "upload base64": 6,
    "upload url": 6,
    "stream": 5,
    "cancel": 6,
}


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    task_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    at_s: float
    descriptors: int
    threads: int
    rss_mib: float


# Loopback neighbours: an image host and a callback receiver.


def image_host(picture: bytes) -> type[BaseHTTPRequestHandler]:
    class Images(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(picture)))
            self.end_headers()
            self.wfile.write(picture)

        def log_message(self, *_args: object) -> None:
            pass

    return Images


class Receiver(BaseHTTPRequestHandler):
    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Receiver.lock:
            Receiver.received += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


# The service.


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Service:
    """``kinema serve`` in a process of its own, as an operator runs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["KINEMA_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        kinema = Path(sys.executable).with_name("kinema")
        clean = {name: value for name, value in os.environ.items() if not name.startswith("KINEMA_")}
        self._log = log.open("w")
        command = [str(kinema), "serve", "--workers", "2"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=clean | env, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kinema serve exited at start:\n{log.read_text()}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"kinema serve did not answer within 90 s:\n{log.read_text()}")

    def sample(self, at_s: float) -> Sample:
        pid = self.process.pid
        descriptors = len(os.listdir(f"/proc/{pid}/fd"))
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        threads = int(status["Threads"].strip())
        rss_mib = int(status["VmRSS"].strip().split()[0]) / 1024
        return Sample(at_s, descriptors, threads, rss_mib)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


# The clients.


async def client_loop(
    client: httpx.AsyncClient, tally: Tally, stop_at: float, budget: int, urls: dict[str, str], seed: int
) -> None:
    chooser = random.Random(seed)
    names = list(ACTIONS)
    weights = list(ACTIONS.values())
    picture = read_sample("sample.jpg") or b""
    own_image = f"{urls['service']}/samples/sample.jpg"
    mine: list[str] = []  #: This client's own tasks: another's are not its to see.

    def body(image_url: str, callback: bool = False) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": MODEL,
            "input": {"prompt": "[Push in] a mountain lake", "image_url": image_url},
        }
        if callback:
            request["callBackUrl"] = f"{urls['receiver']}/hook"
        return request

    async def create(callback: bool = False) -> str | None:
        answer = await client.post("/api/v1/jobs/createTask", json=body(own_image, callback))
        data = checked("createTask", answer)
        if data is None:
            return None
        task_id: str = data["taskId"]
        tally.task_ids.append(task_id)
        mine.append(task_id)
        return task_id

    def checked(route: str, answer: httpx.Response, accept: tuple[int, ...] = (200,)) -> Any:
        try:
            envelope = answer.json()
        except ValueError:
            tally.errors.append(f"{route}: HTTP {answer.status_code}, not JSON: {answer.text[:120]!r}")
            return None
        if answer.status_code != 200 or envelope.get("code") not in accept:
            tally.errors.append(f"{route}: HTTP {answer.status_code} {json.dumps(envelope)[:200]}")
            return None
        return envelope.get("data")

    async def stream() -> None:
        if not mine:
            return
        task_id = chooser.choice(mine)
        # A client watches for a few seconds, or to the end, then goes.
        with suppress(TimeoutError):
            async with asyncio.timeout(3):
                async with client.stream("GET", "/api/v1/jobs/stream", params={"taskId": task_id}) as answer:
                    if answer.status_code != 200:
                        tally.errors.append(f"stream: HTTP {answer.status_code}")
                        return
                    async for line in answer.aiter_lines():
                        if line.startswith("event: error"):
                            tally.errors.append(f"stream: {line}")
                            return

    async def act(name: str) -> None:
        if name == "recordInfo":
            if mine:
                task_id = chooser.choice(mine)
                checked(name, await client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}))
        elif name == "createTask":
            await create()
        elif name == "createTask+callback":
            await create(callback=True)
        elif name == "balance":
            checked(name, await client.get("/api/v1/chat/credit"))
        elif name == "list":
            checked(name, await client.get("/api/v1/jobs/list", params={"pageSize": 20}))
        elif name == "upload stream":
            files = {"file": ("photo.jpg", picture, "image/jpeg")}
            answer = await client.post("/api/file-stream-upload", files=files, data={"uploadPath": "soak"})
            checked(name, answer)
        elif name == "upload base64":
            payload = {"base64Data": base64.b64encode(picture).decode(), "uploadPath": "soak"}
            checked(name, await client.post("/api/file-base64-upload", json=payload))
        elif name == "upload url":
            payload = {"fileUrl": f"{urls['images']}/photo.jpg", "uploadPath": "soak"}
            checked(name, await client.post("/api/file-url-upload", json=payload))
        elif name == "stream":
            await stream()
        elif name == "cancel":
            task_id = await create()
            if task_id is not None:
                # A task may finish before the cancel arrives: that answer is 422, and expected.
                answer = await client.post("/api/v1/jobs/cancel", json={"taskId": task_id})
                checked(name, answer, accept=(200, 422))

    while time.monotonic() < stop_at and tally.requests < budget:
        name = chooser.choices(names, weights)[0]
        started = time.perf_counter()
        try:
            await act(name)
        except httpx.HTTPError as error:
            tally.errors.append(f"{name}: {type(error).__name__}: {error}")
        tally.latencies[name].append(time.perf_counter() - started)
        tally.requests += 1


async def sampler(service: Service, started: float, stop_at: float, samples: list[Sample]) -> None:
    every = min(SAMPLE_EVERY_S, (stop_at - started) / SAMPLES_AT_LEAST)
    while True:
        samples.append(service.sample(time.monotonic() - started))
        if time.monotonic() >= stop_at:
            return
        await asyncio.sleep(min(every, max(0.0, stop_at - time.monotonic())))


async def run_load(
    service: Service, api_keys: list[str], urls: dict[str, str], seconds: float, budget: int
) -> tuple[Tally, list[Sample]]:
    """Each client is a user of its own, with its own key and tasks."""
    tally = Tally()
    samples: list[Sample] = []
    started = time.monotonic()
    stop_at = started + seconds

    async def one(key: str, seed: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=30) as client:
            await client_loop(client, tally, stop_at, budget, urls, seed)

    loops: list[Awaitable[None]] = [one(key, seed) for seed, key in enumerate(api_keys)]
    await asyncio.gather(sampler(service, started, stop_at, samples), *loops)
    return tally, samples


# Judging and printing.


def grew(samples: list[Sample], seconds: float, pick: Callable[[Sample], float]) -> tuple[float, float, bool]:
    """(the peak of the first half after warm-up, the peak of the second, whether it grew by more
    than allowed). Peaks, not single samples: threads and memory come and go with the work in
    flight at each instant; what must not happen is the level they return to rising."""
    settled = [sample for sample in samples if sample.at_s >= seconds * WARMUP_SHARE] or samples[-1:]
    middle = max(1, len(settled) // 2)
    first = max(pick(sample) for sample in settled[:middle])
    last = max(pick(sample) for sample in settled[middle:] or settled[-1:])
    return first, last, last > first * (1 + GROWTH_ALLOWED) + 2


def report(tally: Tally, samples: list[Sample], seconds: float, database: str, received: int) -> bool:
    print(f"soak on {database}: {seconds:.0f} s, {tally.requests} requests, {len(tally.task_ids)} tasks, "
          f"{received} callbacks received, {len(tally.errors)} errors")  # fmt: skip
    kinds = Counter(error.split(" {", 1)[0] for error in tally.errors)
    for kind, count in kinds.most_common(20):
        example = next(error for error in tally.errors if error.startswith(kind))
        print(f"  {count} x {example}")
    print(f"{'route':<22}{'count':>8}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ACTIONS:
        latencies = sorted(tally.latencies.get(name, []))
        if not latencies:
            continue
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"{name:<22}{len(latencies):>8}{statistics.median(latencies) * 1000:>10.1f}{p99 * 1000:>10.1f}")
    print(f"{'at s':>6}{'descriptors':>13}{'threads':>9}{'RSS MiB':>9}")
    shown = max(1, len(samples) // PRINTED_SAMPLES)
    for sample in samples[::shown] + ([samples[-1]] if (len(samples) - 1) % shown else []):
        print(f"{sample.at_s:>6.0f}{sample.descriptors:>13}{sample.threads:>9}{sample.rss_mib:>9.1f}")
    flat = True
    for label, pick in (
        ("descriptors", lambda s: float(s.descriptors)),
        ("threads", lambda s: float(s.threads)),
        ("RSS MiB", lambda s: s.rss_mib),
    ):
        first, last, too_much = grew(samples, seconds, pick)
        print(
            f"{label}: peak {first:.0f} after warm-up, {last:.0f} to the end{' (grew)' if too_much else ''}"
        )
        flat = flat and not too_much
    return not tally.errors and flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "600")))
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--max-requests", type=int, default=200_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kinema-soak-"))
    try:
        with databases(args.database, work) as (database_url, redis_url):
            ok = soak(args, work, database_url, redis_url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


@contextmanager
def databases(kind: str, work: Path) -> Iterator[tuple[str, str]]:
    """The database's URL and the rate limits' storage for a soak on `kind`."""
    if kind == "sqlite":
        yield f"sqlite:///{work / 'kinema.db'}", "memory://"
        return
    redis = os.environ.get("KINEMA_SOAK_REDIS_URL") or os.environ.get("KINEMA_TEST_REDIS_URL")
    if not redis:
        raise SystemExit("--database postgres needs KINEMA_SOAK_REDIS_URL (redis://host:6379/0)")
    with run_database(kind, work, "soak") as url:
        yield url, redis


def soak(args: argparse.Namespace, work: Path, database_url: str, redis_url: str) -> bool:
    db = Database(database_url)
    db.migrate()
    with db.write() as connection:
        api_keys = [
            keys.open_account(connection, f"soak {n}", 10**9, system_clock()).secret
            for n in range(args.clients)
        ]
    db.dispose()
    port = free_port()
    env = {
        "KINEMA_DATA_DIR": str(work / "data"),
        "KINEMA_DATABASE_URL": database_url,
        "KINEMA_PORT": str(port),
        "KINEMA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "KINEMA_RATE_LIMIT_STORAGE_URL": redis_url,
        "KINEMA_CREATE_TASK_RATE_LIMIT": "100000/second",
        "KINEMA_RECORD_INFO_RATE_LIMIT": "100000/second",
        "KINEMA_URL_UPLOAD_RATE_LIMIT": "100000/second",
        "KINEMA_MAX_RUNNING_PER_ACCOUNT": "2",
        # The image host is on loopback, which the fetcher refuses unless told otherwise.
        "KINEMA_ALLOW_PRIVATE_URLS": "true",
        "KINEMA_LOG_LEVEL": "WARNING",
    }
    picture = read_sample("sample.jpg") or b""
    Receiver.received = 0
    with loopback(image_host(picture)) as images, loopback(Receiver) as receiver:
        service = Service(env, work / "serve.log")
        try:
            urls = {"service": service.url, "images": images, "receiver": receiver}
            tally, samples = asyncio.run(run_load(service, api_keys, urls, args.seconds, args.max_requests))
        finally:
            service.stop()
        ok = report(tally, samples, args.seconds, args.database, Receiver.received)
        if tally.errors:
            print("the service's log, from its first traceback:")
            log = (work / "serve.log").read_text()
            start = log.find("Traceback")
            print(log[start : start + 6000] if start >= 0 else log[-3000:])
        return ok


if __name__ == "__main__":
    main()
