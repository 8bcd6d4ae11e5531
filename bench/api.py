"""API benchmarks: Kinema's two hot routes against a bare FastAPI app giving the same answers,
and how long a task takes from createTask to success on an engine that takes no time.
Run with ``python -m bench.api``; figures go in docs/benchmarks.md.

- recordInfo and createTask: each server is a real uvicorn process (same options) on loopback,
  started from here (with ``--processes N``, N of each on ports of their own, each side's load
  split evenly over them: N loads at once, their rates summed): Kinema on SQLite (or PostgreSQL)
  in a temporary data folder, with a funded account, a finished task to read, no workers (new
  tasks stay waiting) and rate limits far above the load; the bare app returns recordInfo's
  answer from a constant and parses createTask's body. createTask sends the seed's request
  (less its ``callBackUrl``) with an image elsewhere (never fetched, as no worker runs): the API
  and the database, no decoding. The load comes from ``wrk`` (one thread) when it is installed,
  else from `bench._load` (bare asyncio) in its own process; both keep N keep-alive connections
  busy for a fixed time after a warm-up. Alternating runs; the best of each side is compared.
- dispatch: in this process, the app with one worker and `InstantEngine` (placeholder files,
  no rendering), called through httpx's ASGI transport. Each task is the seed request on the
  bundled sample image (read locally, as a link to this server); the time runs from sending
  createTask until the task row, polled every millisecond, reads success. One task at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import bindparam, select

from bench._databases import DIALECTS, run_database
from bench._servers import RECORD_ENV
from kinema.accounts import keys
from kinema.api.app import create_app
from kinema.domain.clock import system_clock
from kinema.settings import Settings
from kinema.store.database import Database
from kinema.store.schema import tasks

ROOT = Path(__file__).resolve().parents[1]
RECORD_INFO = "/api/v1/jobs/recordInfo"
CREATE_TASK = "/api/v1/jobs/createTask"
#: Far above anything the load reaches, so the limiter counts but never refuses.
NO_LIMIT = "1000000/second"
PUBLIC_URL = "http://127.0.0.1:8000"
#: The bundled sample as a link to this server: read from storage, never fetched over HTTP.
SAMPLE_URL = f"{PUBLIC_URL}/samples/sample.jpg"
#: An image elsewhere, as in the seed's example: with no workers, nothing ever fetches it.
ELSEWHERE_URL = "https://example.com/knights.jpg"


def seed_body(image_url: str) -> dict[str, Any]:
    """The seed's example request on `image_url`, without its ``callBackUrl``: the service's
    deliverer would post to that address, and a benchmark sends nothing beyond loopback."""
    return {
        "model": "hailuo/2-3-image-to-video-standard",
        "input": {
            "prompt": "Two armored medieval knights clash in an intense duel at sunset, cinematic lighting.",
            "image_url": image_url,
            "duration": "6",
            "resolution": "768P",
        },
    }


def settings_for(data_dir: Path, workers: int, database_url: str) -> dict[str, str]:
    """The service's settings as ``KINEMA_*`` variables, for the server process and for this one."""
    return {
        "KINEMA_DATA_DIR": str(data_dir),
        "KINEMA_DATABASE_URL": database_url,
        "KINEMA_PUBLIC_URL": PUBLIC_URL,
        "KINEMA_WORKERS": str(workers),
        "KINEMA_CREATE_TASK_RATE_LIMIT": NO_LIMIT,
        "KINEMA_RECORD_INFO_RATE_LIMIT": NO_LIMIT,
    }


def settings_from(environment: dict[str, str]) -> Settings:
    return Settings(**{name.removeprefix("KINEMA_").lower(): value for name, value in environment.items()})


def open_funded_account(settings: Settings) -> str:
    db = Database(settings.database_url)
    db.migrate()
    with db.write() as connection:
        key = keys.open_account(connection, "bench", 10**9, system_clock())
    db.dispose()
    return key.secret


# Dispatch.


@dataclass(frozen=True)
class Dispatch:
    """One task's way, in seconds from sending createTask."""

    answered: float  #: createTask answered
    intake_done: float  #: first seen past `waiting` (the input read, checked and stored)
    success: float  #: first seen `success`


async def dispatch_times(settings: Settings, key: str, count: int, warmup: int) -> list[Dispatch]:
    from tests.support.engines import InstantEngine

    app = create_app(settings, engine=InstantEngine(), settle_heap=True)
    db = Database(settings.database_url)
    headers = {"Authorization": f"Bearer {key}"}
    body = seed_body(SAMPLE_URL)
    found: list[Dispatch] = []
    state_of = select(tasks.c.state).where(tasks.c.id == bindparam("task_id"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as client,
    ):
        for index in range(warmup + count):
            started = time.perf_counter()
            answer = (await client.post(CREATE_TASK, json=body, headers=headers)).json()
            answered = time.perf_counter() - started
            if answer["code"] != 200:
                raise RuntimeError(f"createTask refused: {answer}")
            task_id = answer["data"]["taskId"]
            seen: dict[str, float] = {}
            while True:
                with db.read() as connection:
                    state = connection.execute(state_of, {"task_id": task_id}).scalar_one()
                seen.setdefault(state, time.perf_counter() - started)
                if state in ("success", "fail"):
                    break
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"task {task_id} still {state} after 30 s")
                await asyncio.sleep(0.001)
            if state != "success":
                raise RuntimeError(f"task {task_id} failed")
            past_intake = min(at for name, at in seen.items() if name != "waiting")
            if index >= warmup:
                found.append(Dispatch(answered, past_intake, seen["success"]))
    db.dispose()
    return found


# HTTP load.


@dataclass(frozen=True)
class Load:
    """One measured run of the load tool against one route."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int  #: errors on the wire, HTTP statuses other than 200, or answers other than code 200

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """A uvicorn process serving one of `bench._servers`' factories on a loopback port."""

    def __init__(self, factory: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [
            sys.executable, "-m", "uvicorn", "--factory", f"bench._servers:{factory}",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        clean = {name: value for name, value in os.environ.items() if not name.startswith("KINEMA_")}
        with log.open("w") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=clean | env, stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{factory} exited at start:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{factory} did not listen within 60 s:\n{log.read_text()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


WRK_SCRIPT = """
wrk.method = "{method}"
{body}
{headers}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or string.sub(body, 1, 12) ~= '{{"code":200,' then bad = bad + 1 end
end
function done(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  for _, thread in ipairs(threads) do failed = failed + thread:get("bad") end
  io.write(string.format('{{"requests":%d,"seconds":%.6f,"p50_us":%d,"p99_us":%d,"failed":%d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), failed))
end
"""


def wrk_load(url: str, method: str, body: str | None, headers: dict[str, str], args: Any, work: Path) -> Load:
    script = work / f"load-{url.split(':')[2].split('/')[0]}.lua"
    script.write_text(
        WRK_SCRIPT.format(
            method=method,
            body=f"wrk.body = [==[{body}]==]" if body is not None else "",
            headers="\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()),
        )
    )
    base = ["wrk", "-t1", f"-c{args.connections}", "--timeout", "10s", "-s", str(script)]
    subprocess.run([*base, f"-d{args.warmup}s", url], check=True, capture_output=True)
    done = subprocess.run([*base, f"-d{args.duration}s", url], check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Load(
        result["requests"],
        result["seconds"],
        result["p50_us"] / 1e3,
        result["p99_us"] / 1e3,
        result["failed"],
    )


def asyncio_load(url: str, method: str, body: str | None, headers: dict[str, str], args: Any) -> Load:
    spec = {
        "url": url,
        "method": method,
        "body": body,
        "headers": headers,
        "connections": args.connections,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench._load", json.dumps(spec)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    failed = result["errors"] + result["bad"]
    return Load(result["requests"], result["seconds"], result["p50_us"] / 1e3, result["p99_us"] / 1e3, failed)


def load_all(
    urls: list[str], method: str, body: str | None, headers: dict[str, str], args: Any, work: Path
) -> Load:
    """One load on each of `urls` at the same time, the connections split evenly between them;
    their requests summed, the median of their p50s and the worst of their p99s."""
    each = argparse.Namespace(**vars(args) | {"connections": max(1, args.connections // len(urls))})

    def one(url: str) -> Load:
        if args.load == "wrk":
            return wrk_load(url, method, body, headers, each, work)
        return asyncio_load(url, method, body, headers, each)

    with ThreadPoolExecutor(len(urls)) as pool:
        loads = list(pool.map(one, urls))
    seconds = statistics.mean(load.seconds for load in loads)
    return Load(
        requests=round(sum(load.per_second for load in loads) * seconds),
        seconds=seconds,
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=max(load.p99_ms for load in loads),
        failed=sum(load.failed for load in loads),
    )


def bench_http(
    environment: dict[str, str], key: str, task_id: str, args: Any, work: Path
) -> dict[tuple[str, str], Load]:
    """The best run of each side on each route, keyed by (route, side)."""
    headers = {"Authorization": f"Bearer {key}"}
    post_headers = headers | {"Content-Type": "application/json"}
    body = json.dumps(seed_body(ELSEWHERE_URL), separators=(",", ":"))
    servers: dict[str, list[Server]] = {"kinema": [], "bare": []}
    try:
        for n in range(args.processes):
            kinema_env = environment | {"KINEMA_WORKERS": "0"}
            servers["kinema"].append(Server("kinema_app", kinema_env, work / f"kinema-{n}.log"))
        kinema_url = servers["kinema"][0].url
        record = httpx.get(f"{kinema_url}{RECORD_INFO}", params={"taskId": task_id}, headers=headers)
        if record.json()["code"] != 200:
            raise RuntimeError(f"recordInfo refused: {record.text}")
        for n in range(args.processes):
            servers["bare"].append(Server("bare_app", {RECORD_ENV: record.text}, work / f"bare-{n}.log"))
        best: dict[tuple[str, str], Load] = {}
        for _ in range(args.rounds):
            for route, method, payload, route_headers in (
                (f"{RECORD_INFO}?taskId={task_id}", "GET", None, headers),
                (CREATE_TASK, "POST", body, post_headers),
            ):
                for side, processes in servers.items():
                    urls = [server.url + route for server in processes]
                    result = load_all(urls, method, payload, route_headers, args, work)
                    if result.failed:
                        raise RuntimeError(f"{side} {route}: {result.failed} failed requests")
                    name = route.split("?")[0].rsplit("/", 1)[-1]
                    if (name, side) not in best or result.per_second > best[name, side].per_second:
                        best[name, side] = result
        return best
    finally:
        for processes in servers.values():
            for server in processes:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--load", choices=("auto", "wrk", "asyncio"), default="auto")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before measuring")
    parser.add_argument("--duration", type=int, default=10, help="seconds measured in each run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=50, help="tasks timed for dispatch")
    parser.add_argument(
        "--processes", type=int, default=1, help="uvicorn processes of each side, the load split over them"
    )
    parser.add_argument(
        "--database",
        choices=DIALECTS,
        default="sqlite",
        help="postgres: a fresh database on KINEMA_BENCH_POSTGRES_URL (else KINEMA_TEST_POSTGRES_URL)",
    )
    args = parser.parse_args()
    if args.load == "auto":
        args.load = "wrk" if shutil.which("wrk") else "asyncio"
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}")
    tool = "wrk, 1 thread" if args.load == "wrk" else "bench._load (bare asyncio, uvloop)"
    print(
        f"load: {tool}, {args.connections} connections, {args.warmup} s warm-up, {args.duration} s measured, "
        f"best of {args.rounds}; servers: uvicorn {uvicorn.__version__}, {args.processes} process(es) "
        "each, no access log"
    )

    print(f"database: {args.database}")

    with tempfile.TemporaryDirectory() as tmp, run_database(args.database, Path(tmp), "bench") as url:
        work = Path(tmp)
        data_dir = work / "data"
        environment = settings_for(data_dir, workers=1, database_url=url)
        settings = settings_from(environment)
        key = open_funded_account(settings)

        times = asyncio.run(dispatch_times(settings, key, args.tasks, warmup=5))
        total = sorted(one.success * 1e3 for one in times)
        p95 = total[min(len(total) - 1, round(0.95 * len(total)) - 1)]
        answered = statistics.median(one.answered * 1e3 for one in times)
        intake = statistics.median(one.intake_done * 1e3 for one in times)
        print(
            f"dispatch: createTask to success, {len(total)} tasks one at a time: "
            f"median {statistics.median(total):.1f} ms (target < 50), p95 {p95:.1f} ms; "
            f"medians of the steps: createTask answered {answered:.1f} ms, past intake {intake:.1f} ms"
        )

        db = Database(settings.database_url)
        with db.read() as connection:
            succeeded = select(tasks.c.id).where(tasks.c.state == "success")
            finished = connection.execute(succeeded).scalars().first()
        db.dispose()
        if finished is None:
            raise RuntimeError("no finished task to read")
        best = bench_http(environment, key, finished, args, work)

    for route, target in (("recordInfo", 0.5), ("createTask", 0.3)):
        kinema, bare = best[route, "kinema"], best[route, "bare"]
        ratio = kinema.per_second / bare.per_second
        print(
            f"{route}: kinema {kinema.per_second:.0f} req/s, bare {bare.per_second:.0f} req/s, "
            f"ratio {ratio:.3f} (target >= {target}); kinema p50 {kinema.p50_ms:.1f} ms, "
            f"p99 {kinema.p99_ms:.1f} ms (target < 50); "
            f"bare p50 {bare.p50_ms:.1f} ms, p99 {bare.p99_ms:.1f} ms"
        )


if __name__ == "__main__":
    main()
