"""Chaos: the service scaled out on one machine, its processes killed at random, every task still right.

``python -m bench.chaos [--tasks 300] [--seconds 240] [--seed N]`` runs two API processes
(``kinema serve --workers 0``) and four ``kinema worker`` processes on one fresh PostgreSQL
database (``KINEMA_CHAOS_POSTGRES_URL``, else ``KINEMA_TEST_POSTGRES_URL``), their rate limits
in Redis (``KINEMA_CHAOS_REDIS_URL``, else ``KINEMA_TEST_REDIS_URL``) and their files in an S3
bucket (moto's server), everything on 127.0.0.1. The engine is the tests' steady one (half a
second a video), so that the service's own moves are what is exercised.

Clients create the tasks through both API processes, spread over the first half of the chaos,
each with an ``Idempotency-Key`` and retried on the other process when one dies mid-request;
the input is a fresh upload, an account's earlier upload, or an image host's picture, in turn.
Each task asks for a callback to a receiver that answers at random: 200, HTTP 500, a dropped
connection, or slowly (some past the deliverer's timeout). Every few seconds a worker, or the
second API process, is killed with SIGKILL and started again at once. The random is seeded and
the seed printed: ``--seed`` replays the same victims at the same moments (how they fall in
the work is the machine's).

When every task has ended, or the chaos time is up, the kills stop, every process is up again
and the run waits for the work to settle. Then it checks that every task succeeded, once; that
each was charged once (each account's balance is its grant less its tasks' prices, and equals
the sum of its ledger); that every result downloads from the bucket through its link; that
every callback reached the receiver with the right task and valid signatures (both schemes);
that nothing is left generating; and that, once retention has swept the input copies of tasks
never created (a kill between the copy and the task's row) as it does an hour on, every object
in the bucket belongs to an upload or a task the database knows. It prints a short summary and
exits 1 if a check failed or the run passed its deadline. Every process it started is gone when
it returns.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Final

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from tests.support.engines import SteadyEngine
from tests.support.http import loopback as serving
from tests.support.s3_server import S3Server, s3_server

from bench._databases import postgres_database, postgres_server
from bench.soak import image_host as image_handler
from kinema.accounts import credits, keys
from kinema.domain.accounts import Movement
from kinema.domain.clock import system_clock
from kinema.domain.task import Task, TaskState
from kinema.files import retention
from kinema.files.uploads import find_upload
from kinema.storage.own import read_sample
from kinema.storage.s3 import S3BlobStore
from kinema.store import callbacks
from kinema.store import workers as presence
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.webhooks import secrets as webhook_secrets

ROOT: Final = Path(__file__).resolve().parent.parent
KINEMA: Final = Path(sys.executable).with_name("kinema")
ENGINE: Final = f"{SteadyEngine.__module__}:{SteadyEngine.__name__}"
MODEL: Final = "hailuo/2-3-image-to-video-standard"
#: What the steady engine writes as every video.
VIDEO: Final = b"\x00\x00\x00\x18ftypisom placeholder video"
STARTING_CREDITS: Final = 10**9
CALLBACK_TIMEOUT_S: Final = 1.0

#: How the receiver answers a callback, with how often: ``slow`` answers within the deliverer's
#: timeout, ``late`` after it (the deliverer has given up: not an acceptance).
ANSWERS: Final[dict[str, int]] = {"ok": 45, "error": 20, "drop": 15, "slow": 10, "late": 10}


@dataclass(frozen=True)
class Plan:
    tasks: int = 300
    seconds: float = 240.0  #: How long processes are killed, at most.
    settle_s: float = 120.0  #: After the kills, how long the work has to settle.
    seed: int = 0
    accounts: int = 6
    workers: int = 4
    kill_every_s: tuple[float, float] = (1.5, 4.0)  #: A kill every so often, at random in this range.
    clients: int = 8
    #: The whole run's bound, start-up and checks included; None: the chaos, the settling and a minute.
    deadline: float | None = None

    @property
    def deadline_s(self) -> float:
        return self.deadline if self.deadline is not None else self.seconds + self.settle_s + 60.0


@dataclass
class Report:
    plan: Plan
    failures: list[str] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    client_retries: int = 0
    callbacks_received: int = 0
    callback_answers: Counter[str] = field(default_factory=Counter)
    delivery_attempts: int = 0
    requeues: int = 0
    stale_objects: int = 0
    orphan_inputs: int = 0
    tracebacks: list[str] = field(default_factory=list)
    chaos_s: float = 0.0
    total_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = [
            f"chaos (seed {self.plan.seed}): {self.plan.tasks} tasks in {self.total_s:.0f} s "
            f"({self.chaos_s:.0f} s of kills); {sum(self.kills.values())} kills "
            f"({', '.join(f'{count} {kind}' for kind, count in sorted(self.kills.items())) or 'none'}), "
            f"{self.restarts} restarts",
            f"  {self.client_retries} client requests retried on the other API process; "
            f"{self.requeues} tasks requeued after losing their worker",
            f"  callbacks: {self.callbacks_received} received "
            f"({', '.join(f'{count} {kind}' for kind, count in sorted(self.callback_answers.items()))}), "
            f"{self.delivery_attempts} attempts recorded, "
            f"{self.delivery_attempts - self.plan.tasks} retries",
            f"  {self.stale_objects} objects of attempts that never finished (their task's, "
            f"deleted with it); input copies of {self.orphan_inputs} tasks never created, swept by "
            "retention; tracebacks in the logs of "
            f"{', '.join(trace.split(':', 1)[0] for trace in self.tracebacks) or 'no process'}",
        ]
        if self.failures:
            lines.append(f"{len(self.failures)} FAILED checks:")
            lines += [f"  {failure}" for failure in self.failures[:30]]
            lines += self.tracebacks[:2]
        else:
            lines.append("every check passed")
        return "\n".join(lines)


class ChaosFailed(Exception):
    """The run could not go on: a process would not start, or the service refused a request."""


class DeadlinePassed(ChaosFailed):
    """The run's global deadline passed before the work settled."""


# Loopback neighbours: an image host and a callback receiver that misbehaves.


@dataclass(frozen=True)
class Callback:
    """One callback request, as the receiver saw and judged it."""

    task_id: str
    account_id: str | None  #: The account whose secret made the published signature; None: none did.
    standard_signature: bool  #: Whether the Standard Webhooks signature verified.
    code: int
    answer: str  #: How the receiver answered (a key of `ANSWERS`).

    @property
    def accepted(self) -> bool:
        return self.answer in ("ok", "slow")


class Receiver:
    """The callback receiver: answers at random (seeded), checks every signature it is sent."""

    def __init__(self, account_secrets: dict[str, str], seed: int) -> None:
        self.secrets = account_secrets
        self.received: list[Callback] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.closing = threading.Event()

    def judge(self, headers: dict[str, str], body: bytes) -> str:
        """How to answer this callback; it is recorded with what its signatures proved."""
        try:
            payload = json.loads(body)
            task_id = str(payload["data"]["taskId"])
            code = int(payload["code"])
        except (ValueError, KeyError, TypeError):
            task_id, code = "", 0
        timestamp = headers.get("x-webhook-timestamp", "")
        account_id = next(
            (
                account
                for account, secret in self.secrets.items()
                if hmac.compare_digest(
                    headers.get("x-webhook-signature", ""), published_signature(secret, task_id, timestamp)
                )
            ),
            None,
        )
        standard = False
        if account_id is not None:
            try:
                Webhook(self.secrets[account_id]).verify(body, headers)
                standard = True
            except WebhookVerificationError:
                standard = False
        with self._lock:
            answer = self._rng.choices(list(ANSWERS), list(ANSWERS.values()))[0]
            self.received.append(Callback(task_id, account_id, standard, code, answer))
        return answer

    def accepted_tasks(self) -> set[str]:
        with self._lock:
            return {callback.task_id for callback in self.received if callback.accepted}


def published_signature(secret: str, task_id: str, timestamp: str) -> str:
    """The published scheme, written out here rather than taken from the service."""
    digest = hmac.new(secret.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@contextmanager
def receiving(receiver: Receiver) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer = receiver.judge({k.lower(): v for k, v in self.headers.items()}, body)
            if answer == "drop":
                self.close_connection = True
                return
            if answer in ("slow", "late"):
                receiver.closing.wait(CALLBACK_TIMEOUT_S * (0.3 if answer == "slow" else 1.5))
            with suppress(OSError):  # a late answer finds the deliverer gone
                self.send_response(500 if answer == "error" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    with serving(Handler) as url:
        try:
            yield f"{url}/hooks/kinema"
        finally:
            receiver.closing.set()


@contextmanager
def image_host(picture: bytes) -> Iterator[str]:
    with serving(image_handler(picture)) as url:
        yield f"{url}/photo.jpg"


# The fleet: every process of the service, each started again as often as it is killed.


class Member:
    """One process of the service; its log gathers every life it had."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [str(KINEMA), *self.args], env=self.env, stdout=output, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """As a crash would: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def reap(self, grace_s: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill()


@contextmanager
def fleet(members: list[Member]) -> Iterator[list[Member]]:
    """Start `members`; when the block ends, stop them (SIGTERM, then SIGKILL after 5 s)."""
    try:
        for member in members:
            member.start()
        yield members
    finally:
        for member in members:
            member.terminate()
        for member in members:
            member.reap(5.0)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def service_env(work: Path, database_url: str, redis_url: str, s3: S3Server, bucket: str) -> dict[str, str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("KINEMA_", "AWS_"))}
    # The engine lives in the tests' support package, beside the source.
    path = os.pathsep.join(part for part in (str(ROOT), os.environ.get("PYTHONPATH", "")) if part)
    return clean | {
        "PYTHONPATH": path,
        "KINEMA_DATA_DIR": str(work / "data"),
        "KINEMA_DATABASE_URL": database_url,
        "KINEMA_RATE_LIMIT_STORAGE_URL": redis_url,
        "KINEMA_CREATE_TASK_RATE_LIMIT": "100000/second",
        "KINEMA_RECORD_INFO_RATE_LIMIT": "100000/second",
        "KINEMA_STORAGE": "s3",
        "KINEMA_S3_BUCKET": bucket,
        "KINEMA_S3_ENDPOINT_URL": s3.endpoint_url,
        "KINEMA_S3_REGION": "us-east-1",
        "KINEMA_S3_ACCESS_KEY_ID": "kinema-chaos-key",
        "KINEMA_S3_SECRET_ACCESS_KEY": "kinema-chaos-secret",
        "KINEMA_S3_PATH_STYLE": "true",
        "KINEMA_SECRET_KEY": secrets.token_hex(16),
        "KINEMA_ENGINE": ENGINE,
        "KINEMA_ENGINE_PROCESS": "[]",
        "KINEMA_WORKERS": "1",
        "KINEMA_INTAKE_THREADS": "2",
        # Short leases, so that a killed worker's task is taken up again within seconds; enough
        # attempts that losing its worker a few times never fails a task.
        "KINEMA_LEASE_SECONDS": "3",
        "KINEMA_MAX_ATTEMPTS": "50",
        "KINEMA_POLL_SECONDS": "0.5",
        "KINEMA_CALLBACK_RETRY_SCHEDULE": "[0.5, 1, 2]",
        "KINEMA_CALLBACK_TIMEOUT_SECONDS": str(CALLBACK_TIMEOUT_S),
        # The image host and the receiver are on loopback.
        "KINEMA_ALLOW_PRIVATE_URLS": "true",
        "KINEMA_LOG_LEVEL": "INFO",
    }


# The clients.


class Clients:
    """Callers of both API processes: a request that meets a dead one is made again on the other."""

    def __init__(self, api_urls: list[str], deadline: float, report: Report) -> None:
        self.api_urls = api_urls
        self.deadline = deadline
        self.report = report
        self._lock = threading.Lock()
        self.http = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=32))

    def call(self, first: int, method: str, path: str, key: str, **options: Any) -> dict[str, Any]:
        """The envelope's ``data`` of the first answer that is not the service's failure."""
        headers = {"Authorization": f"Bearer {key}"} | options.pop("headers", {})
        turn = first
        while True:
            url = self.api_urls[turn % len(self.api_urls)] + path
            why = ""
            try:
                answer = self.http.request(method, url, headers=headers, **options)
                envelope = answer.json()
                if answer.status_code < 500 and envelope.get("code") == 200:
                    data: dict[str, Any] = envelope.get("data") or {}
                    return data
                if answer.status_code < 500 and envelope.get("code") not in (429, 500, 503):
                    raise ChaosFailed(f"{method} {path}: {json.dumps(envelope)[:300]}")
                why = f"HTTP {answer.status_code} {envelope.get('code')}"
            except (httpx.TransportError, ValueError) as error:
                why = type(error).__name__
            if time.monotonic() > self.deadline:
                raise DeadlinePassed(f"{method} {path} kept failing ({why})")
            with self._lock:
                self.report.client_retries += 1
            turn += 1
            time.sleep(0.1)  # a retry's pause: the other process answers at once, or soon

    def close(self) -> None:
        self.http.close()


@dataclass
class Account:
    account_id: str
    key: str
    secret: str
    upload_url: str = ""


def create_one(
    clients: Clients, accounts: list[Account], index: int, image_url: str, hook: str
) -> tuple[str, str]:
    """Task `index`: (its account, its id). Its input is, in turn, a fresh upload, the account's
    earlier upload, or the image host's picture."""
    account = accounts[index % len(accounts)]
    picture = read_sample("sample.jpg") or b""
    kind = index % 3
    if kind == 0:
        upload = clients.call(
            index,
            "POST",
            "/api/file-base64-upload",
            account.key,
            json={
                "base64Data": base64.b64encode(picture).decode(),
                "uploadPath": "chaos",
                "fileName": f"task-{index}.jpg",
            },
        )
        source = str(upload["downloadUrl"])
    else:
        source = account.upload_url if kind == 1 else image_url
    body = {
        "model": MODEL,
        "callBackUrl": hook,
        "input": {"prompt": f"[Push in] chaos {index}", "image_url": source, "duration": "6"},
    }
    made = clients.call(
        index,
        "POST",
        "/api/v1/jobs/createTask",
        account.key,
        json=body,
        headers={"Idempotency-Key": f"chaos-{index}"},
    )
    return account.account_id, str(made["taskId"])


# The run.


def run(
    plan: Plan, postgres_url: str, redis_url: str, work: Path, out: Callable[[str], None] = print
) -> Report:
    """One chaos run; the report says what happened and which checks failed."""
    report = Report(plan)
    started = time.monotonic()
    deadline = started + plan.deadline_s
    try:
        with ExitStack() as stack:
            database_url = stack.enter_context(postgres_database(postgres_url))
            db = Database(database_url)
            stack.callback(db.dispose)
            db.migrate()
            accounts = open_accounts(db, plan.accounts)
            s3 = stack.enter_context(s3_server())
            bucket = s3.new_bucket()
            receiver = Receiver({account.account_id: account.secret for account in accounts}, plan.seed + 1)
            hook = stack.enter_context(receiving(receiver))
            picture = read_sample("sample.jpg") or b""
            image_url = stack.enter_context(image_host(picture))
            env = service_env(work, database_url, redis_url, s3, bucket)
            ports = [free_port(), free_port()]
            api_urls = [f"http://127.0.0.1:{port}" for port in ports]
            members = [
                Member(
                    f"api-{n}", ["serve", "--workers", "0", "--port", str(port)], env, work / f"api-{n}.log"
                )
                for n, port in enumerate(ports)
            ] + [
                Member(
                    f"worker-{n}",
                    ["worker"],
                    env | {"KINEMA_PUBLIC_URL": api_urls[0]},
                    work / f"worker-{n}.log",
                )
                for n in range(plan.workers)
            ]
            stack.enter_context(fleet(members))
            clients = Clients(api_urls, deadline, report)
            stack.callback(clients.close)
            wait_ready(members, api_urls, db, plan.workers, deadline)
            for account in accounts:
                uploaded = clients.call(
                    0,
                    "POST",
                    "/api/file-base64-upload",
                    account.key,
                    json={"base64Data": base64.b64encode(picture).decode(), "uploadPath": "chaos"},
                )
                account.upload_url = str(uploaded["downloadUrl"])
            out(f"chaos: seed {plan.seed}, {plan.tasks} tasks, {plan.workers} workers, 2 API processes")
            made = chaos(
                plan, report, members, clients, accounts, image_url, hook, db, started, deadline, out
            )
            settle(members, db, receiver, plan.tasks, deadline)
            audit(report, db, clients, accounts, made, receiver, s3, bucket, members)
    except DeadlinePassed as error:
        report.failures.append(f"the run passed its deadline of {plan.deadline_s:.0f} s: {error}")
    except ChaosFailed as error:
        report.failures.append(str(error))
    report.total_s = time.monotonic() - started
    report.tracebacks = first_tracebacks(work)
    return report


def first_tracebacks(work: Path) -> list[str]:
    """The first traceback each process's log holds: a killed process prints none, so any is news."""
    found = []
    for log in sorted(work.glob("*.log")):
        text = log.read_text(errors="replace")
        start = text.find("Traceback")
        if start >= 0:
            found.append(f"{log.stem}: {text[start : start + 3000]}")
    return found


def open_accounts(db: Database, count: int) -> list[Account]:
    accounts = []
    with db.write() as connection:
        for n in range(count):
            new = keys.open_account(connection, f"chaos {n}", STARTING_CREDITS, system_clock())
            account_id = new.record.account_id
            secret = webhook_secrets.ensure_secret(connection, account_id, system_clock())
            accounts.append(Account(account_id, new.secret, secret))
    return accounts


def poll(probe: Callable[[], bool], deadline: float, what: str) -> None:
    """Until `probe` answers True; `DeadlinePassed` (saying `what`) if the deadline comes first."""
    delay = 0.01
    while not probe():
        if time.monotonic() > deadline:
            raise DeadlinePassed(f"still waiting for {what}")
        time.sleep(delay)  # a poll interval, not a wait for the condition
        delay = min(delay * 2, 0.25)


def wait_ready(
    members: list[Member], api_urls: list[str], db: Database, workers: int, deadline: float
) -> None:
    def up() -> bool:
        for member in members:
            if not member.alive:
                raise ChaosFailed(f"{member.name} exited at start:\n{member.log.read_text()[-3000:]}")
        for url in api_urls:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code != 200:
                    return False
            except httpx.TransportError:
                return False
        with db.read() as connection:
            return presence.live_count(connection, system_clock() - 60_000) >= workers

    poll(up, deadline, "every process to start")


def chaos(
    plan: Plan,
    report: Report,
    members: list[Member],
    clients: Clients,
    accounts: list[Account],
    image_url: str,
    hook: str,
    db: Database,
    started: float,
    deadline: float,
    out: Callable[[str], None],
) -> dict[str, str]:
    """Create every task while processes are killed; answers each task's account, by task id."""
    rng = random.Random(plan.seed)
    victims = [member for member in members if member.name != "api-0"]  # one API stays up
    weights = [1 if member.name.startswith("api") else 2 for member in victims]
    stop = threading.Event()
    chaos_started = time.monotonic()
    chaos_ends = chaos_started + plan.seconds

    def kill_at_random() -> None:
        while not stop.wait(rng.uniform(*plan.kill_every_s)):
            victim = rng.choices(victims, weights)[0]
            victim.kill()
            report.kills["api" if victim.name.startswith("api") else "worker"] += 1
            out(f"  {time.monotonic() - started:6.1f} s  kill -9 {victim.name}")
            victim.start()
            report.restarts += 1

    made: dict[str, str] = {}
    spread_s = plan.seconds / 2

    def create(index: int) -> None:
        # Pacing: the tasks come over the first half of the chaos, not all at once.
        time.sleep(max(0.0, chaos_started + index * spread_s / plan.tasks - time.monotonic()))
        account_id, task_id = create_one(clients, accounts, index, image_url, hook)
        made[task_id] = account_id

    killer = threading.Thread(target=kill_at_random, name="chaos-killer", daemon=True)
    killer.start()
    try:
        with ThreadPoolExecutor(plan.clients, thread_name_prefix="chaos-client") as pool:
            futures = [pool.submit(create, index) for index in range(plan.tasks)]
            try:
                for future in futures:
                    future.result()
            finally:
                pool.shutdown(cancel_futures=True)  # after a failure, the tasks not yet begun stay so

        def ended_or_time_up() -> bool:
            return time.monotonic() >= chaos_ends or finished_count(db) >= plan.tasks

        poll(ended_or_time_up, deadline, "the tasks to end while processes are killed")
    finally:
        stop.set()
        killer.join()
        report.chaos_s = time.monotonic() - chaos_started
    return made


def finished_count(db: Database) -> int:
    with db.read() as connection:
        counts = lifecycle.count_by_state(connection)
    return sum(count for state, count in counts.items() if state.is_terminal)


def settle(members: list[Member], db: Database, receiver: Receiver, tasks: int, deadline: float) -> None:
    """Every process up again, every task ended and every callback delivered, by the deadline."""
    for member in members:
        if not member.alive:
            member.start()

    def settled() -> bool:
        if finished_count(db) < tasks or len(receiver.accepted_tasks()) < tasks:
            return False
        # Nothing pending, due now or later (a lease held or a retry scheduled).
        return not callbacks.any_due(db, system_clock() + 3_600_000)

    poll(settled, deadline, "every task to end and every callback to be delivered")


def audit(
    report: Report,
    db: Database,
    clients: Clients,
    accounts: list[Account],
    made: dict[str, str],
    receiver: Receiver,
    s3: S3Server,
    bucket: str,
    members: list[Member],
) -> None:
    failures = report.failures
    tasks: dict[str, Task] = {}
    with db.read() as connection:
        for account in accounts:
            for task in lifecycle.list_tasks(connection, account.account_id, limit=report.plan.tasks + 100):
                tasks[task.id] = task

    # Every task made once, and successful.
    if len(made) != report.plan.tasks:
        failures.append(f"{len(made)} distinct task ids answered for {report.plan.tasks} tasks created")
    if set(tasks) != set(made):
        failures.append(
            f"{len(tasks)} tasks in the database, {len(set(tasks) - set(made))} of them never answered, "
            f"{len(set(made) - set(tasks))} answered but missing"
        )
    states = Counter(task.state.value for task in tasks.values())
    if states != Counter({TaskState.SUCCESS.value: len(tasks)}):
        failures.append(f"tasks by state: {dict(states)}")
        for task in tasks.values():
            if task.state is not TaskState.SUCCESS:
                failures.append(f"task {task.id} {task.state.value}: {task.fail_code} {task.fail_msg}")
    leased = [task.id for task in tasks.values() if task.lease_owner is not None]
    if leased:
        failures.append(f"{len(leased)} tasks still leased: {leased[:5]}")
    report.requeues = sum(task.lapses for task in tasks.values())
    successes = Counter(
        match.group(1)
        for member in members
        if member.name.startswith("worker")
        for match in re.finditer(r"task (\w+) success$", member.log.read_text(errors="replace"), re.M)
    )
    twice = [task_id for task_id, count in successes.items() if count > 1]
    if twice:
        failures.append(f"{len(twice)} tasks finished successfully more than once: {twice[:5]}")

    # Each charged once.
    with db.read() as connection:
        for account in accounts:
            mine = [task for task in tasks.values() if task.account_id == account.account_id]
            ledger = credits.ledger(connection, account.account_id)
            balance = credits.balance(connection, account.account_id)
            spent = sum(task.price for task in mine)
            if balance != STARTING_CREDITS - spent:
                failures.append(
                    f"account {account.account_id}: balance {balance}, expected {STARTING_CREDITS - spent}"
                )
            if balance != sum(entry.delta for entry in ledger):
                failures.append(f"account {account.account_id}: balance {balance} is not its ledger's sum")
            reserved = Counter(entry.task_id for entry in ledger if entry.reason is Movement.RESERVE)
            refunded = [entry.task_id for entry in ledger if entry.reason is Movement.REFUND]
            wrong = [task.id for task in mine if reserved[task.id] != 1]
            if wrong or refunded or len(reserved) != len(mine):
                failures.append(
                    f"account {account.account_id}: {len(wrong)} tasks not reserved exactly once, "
                    f"{len(refunded)} refunds, {len(reserved)} reservations for {len(mine)} tasks"
                )

    # Every result downloadable through its link.
    keys_of = {account.account_id: account.key for account in accounts}
    for task in tasks.values():
        record = clients.call(
            0, "GET", "/api/v1/jobs/recordInfo", keys_of[task.account_id], params={"taskId": task.id}
        )
        links = json.loads(record.get("resultJson") or "{}").get("resultUrls") or []
        if not links:
            failures.append(f"task {task.id}: no result link")
            continue
        try:
            video = clients.http.get(links[0])
        except httpx.HTTPError as error:
            failures.append(f"task {task.id}: its video did not download ({error})")
            continue
        if video.status_code != 200 or video.content != VIDEO:
            failures.append(f"task {task.id}: its video link answered HTTP {video.status_code}")

    # Every callback delivered, each with the right task and valid signatures.
    received = list(receiver.received)
    report.callbacks_received = len(received)
    report.callback_answers = Counter(callback.answer for callback in received)
    for callback in received:
        if callback.task_id not in tasks:
            failures.append(f"a callback for an unknown task {callback.task_id!r}")
        elif callback.account_id != tasks[callback.task_id].account_id:
            failures.append(f"a callback of task {callback.task_id} without its account's valid signature")
        elif not callback.standard_signature:
            failures.append(
                f"a callback of task {callback.task_id} with an invalid Standard Webhooks signature"
            )
        elif callback.code != 200:
            failures.append(f"a callback of task {callback.task_id} said code {callback.code}")
    unheard = set(tasks) - receiver.accepted_tasks()
    if unheard:
        failures.append(
            f"{len(unheard)} tasks whose callback never reached the receiver: {sorted(unheard)[:5]}"
        )
    with db.read() as connection:
        for task_id in tasks:
            deliveries = callbacks.deliveries_of(connection, task_id)
            report.delivery_attempts += sum(len(delivery.attempts) for delivery in deliveries)
            if [delivery.state for delivery in deliveries] != ["delivered"]:
                failures.append(f"task {task_id}: deliveries {[d.state for d in deliveries]}")

    # No object in the bucket that nothing in the database knows of, once retention has swept
    # the input copies of tasks never created (an API process killed between the copy and the
    # row) as it does when they are an hour old.
    with tempfile.TemporaryDirectory() as staging:
        store = S3BlobStore(s3.options(bucket), staging_root=Path(staging))
        report.orphan_inputs = retention.sweep_orphan_inputs(
            db, store, system_clock() + retention.ORPHAN_INPUT_GRACE_MS
        )
    for key in s3.keys(bucket):
        parts = key.split("/")
        task = tasks.get(parts[2]) if len(parts) > 3 else None
        if parts[0] == "uploads" and find_upload(db, key) is not None:
            continue
        if parts[0] == "inputs" and task is not None and task.input_key == key:
            continue
        if parts[0] == "results" and task is not None and task.account_id == parts[1]:
            if key not in (task.result or {}).values():
                report.stale_objects += 1
            continue
        failures.append(f"an orphan object in the bucket: {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=int(os.environ.get("CHAOS_TASKS", "300")))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS", "240")))
    parser.add_argument(
        "--seed", type=int, default=int(os.environ.get("CHAOS_SEED") or secrets.randbelow(10**6))
    )
    args = parser.parse_args()
    redis_url = os.environ.get("KINEMA_CHAOS_REDIS_URL") or os.environ.get("KINEMA_TEST_REDIS_URL")
    if not redis_url:
        raise SystemExit("the chaos needs KINEMA_CHAOS_REDIS_URL (redis://host:6379/0)")
    plan = Plan(tasks=args.tasks, seconds=args.seconds, seed=args.seed)
    work = Path(tempfile.mkdtemp(prefix="kinema-chaos-"))
    try:
        report = run(plan, postgres_server("chaos"), redis_url, work)
        print(report.summary())
        if not report.ok:
            replay = f"CHAOS_SEED={plan.seed} CHAOS_TASKS={plan.tasks} CHAOS_SECONDS={plan.seconds:g}"
            print(f"replay with: {replay} make chaos")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
