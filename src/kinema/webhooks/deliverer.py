"""The deliverer: sends due callbacks from the outbox, retries with backoff, records every attempt.

Any number of deliverers may run at once (one in every ``kinema serve`` and ``kinema worker``):
each claims a delivery with a lease before sending, so an attempt is made by one of them only.
A deliverer that dies mid-attempt leaves a lapsed lease, and the delivery is tried again:
delivery is at least once, and receivers deduplicate on ``webhook-id``.

Each attempt posts the task's recordInfo answer as it is at that moment (with fresh links) to
the callback URL, checked against the SSRF rules and connected to the checked address; 15 s
timeout; any 2xx is delivered; redirects are failed attempts.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from kinema.domain.callbacks import Attempt, ClaimedDelivery, DeliveryState
from kinema.domain.clock import Clock
from kinema.domain.errors import InvalidInput
from kinema.domain.task import TaskState
from kinema.net.fetcher import SafeFetcher
from kinema.storage.signing import LinkSigner, link_expiry
from kinema.store import callbacks
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.records import task_record
from kinema.webhooks import secrets
from kinema.webhooks.signing import callback_headers

log = logging.getLogger("kinema.webhooks")

_MAX_ERROR: Final = 500
#: Added to the timeout for the lease: a live deliverer never loses its lease mid-attempt.
_LEASE_MARGIN_MS: Final = 5_000


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    public_url: str
    link_seconds: int
    #: Delay after the 1st, 2nd, ... failed attempt, in seconds; the last repeats.
    schedule_s: Sequence[float] = (5, 30, 120, 600, 1800, 3600)
    window_ms: int = 24 * 3600 * 1000
    poll_s: float = 1.0
    jitter: float = 0.2  #: Each delay is stretched or shrunk by up to this fraction.
    timeout_s: float = 15.0

    @property
    def lease_ms(self) -> int:
        return round(self.timeout_s * 1000) + _LEASE_MARGIN_MS


Claimed = ClaimedDelivery


class Deliverer:
    def __init__(
        self,
        db: Database,
        fetcher: SafeFetcher,
        signer: LinkSigner,
        options: DeliveryOptions,
        *,
        clock: Clock,
        owner: str,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.fetcher = fetcher
        self.signer = signer
        self.options = options
        self.clock = clock
        self.owner = owner
        self.rng = rng or random.Random()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # Running.

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kinema-deliverer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wake(self) -> None:
        """Look for due deliveries now (a task just finished in this process)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                while not self._stopping.is_set() and self.run_once():
                    pass
            except Exception:
                log.exception("deliverer %s failed; trying again", self.owner)
            self._wake.wait(self.options.poll_s)
            self._wake.clear()

    def run_once(self) -> bool:
        """Make one due attempt; False when nothing was due."""
        claimed = self._claim(self.clock())
        if claimed is None:
            return False
        self._attempt(claimed)
        return True

    # One attempt.

    def _claim(self, now: int) -> Claimed | None:
        # A read first: an idle deliverer, looking every poll, takes no write lock (SQLite's
        # one writer) when nothing is due.
        if not callbacks.any_due(self.db, now):
            return None
        with self.db.write() as connection:
            return callbacks.claim_due(connection, self.db.dialect, self.owner, now, self.options.lease_ms)

    def _attempt(self, claimed: Claimed) -> None:
        started = self.clock()
        status: int | None = None
        latency_ms = 0
        error = ""
        try:
            body, headers = self._request(claimed, started)
            outcome = self.fetcher.post(
                claimed.url,
                content=body.encode(),
                headers=headers,
                timeout_s=self.options.timeout_s,
                field="callBackUrl",
            )
            status, latency_ms = outcome.status, outcome.latency_ms
            if 300 <= status < 400:
                error = f"redirects are not followed (HTTP {status} to {outcome.location or 'nowhere'})"
            elif not 200 <= status < 300:
                error = f"the receiver answered HTTP {status}"
        except _TaskGone:
            error = "the task no longer exists"
        except InvalidInput as refused:
            # Refused by the SSRF rules, or the transfer failed: the fetcher says which, for users.
            error = refused.message
            latency_ms = max(0, self.clock() - started)
        self._record(claimed, started, status, latency_ms, error)

    def _request(self, claimed: Claimed, now: int) -> tuple[str, dict[str, str]]:
        with self.db.write() as connection:
            task = lifecycle.get_task(connection, claimed.task_id)
            if task is None:
                raise _TaskGone()
            signing = secrets.signing_secrets(connection, claimed.account_id, now) or [
                secrets.ensure_secret(connection, claimed.account_id, now)
            ]
        links_expire_at = link_expiry(now // 1000, self.options.link_seconds)
        record = task_record(task, self.signer, self.options.public_url, links_expire_at)
        payload: dict[str, Any] = (
            {"code": 200, "msg": "success", "data": record}
            if task.state is TaskState.SUCCESS
            else {"code": 501, "msg": task.fail_msg or "generation failed", "data": record}
        )
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return body, callback_headers(signing, claimed.id, task.id, body, now // 1000)

    def _record(
        self, claimed: Claimed, started: int, status: int | None, latency_ms: int, error: str
    ) -> None:
        now = self.clock()
        values: dict[str, Any] = {"last_error": error[:_MAX_ERROR]}
        if not error:
            values |= {"state": DeliveryState.DELIVERED.value, "delivered_at": now}
        else:
            retry_at = now + self._backoff_ms(claimed.attempt)
            if retry_at > claimed.created_at + self.options.window_ms:
                values["state"] = DeliveryState.FAILED.value
            else:
                values["next_attempt_at"] = retry_at
        attempt = Attempt(claimed.attempt, started, status, latency_ms, error[:_MAX_ERROR])
        with self.db.write() as connection:
            if not callbacks.record_attempt(connection, claimed, self.owner, values, attempt):
                log.warning("delivery %s attempt %d: lease lost; not recorded", claimed.id, claimed.attempt)
                return
        outcome = "delivered" if not error else values.get("state", "will retry")
        log.info(
            "callback %s of task %s attempt %d: %s%s",
            claimed.id,
            claimed.task_id,
            claimed.attempt,
            outcome,
            f" ({error})" if error else "",
        )

    def _backoff_ms(self, attempt: int) -> int:
        schedule = self.options.schedule_s
        base = schedule[min(attempt, len(schedule)) - 1]
        spread = self.options.jitter
        return round(base * 1000 * self.rng.uniform(1 - spread, 1 + spread))


class _TaskGone(Exception):
    """The task's record was deleted (retention) before its callback was delivered."""
