"""Callbacks in tests: a finished task with its callback in the outbox, and a deliverer on a fake clock."""

from __future__ import annotations

import random

from tests.support.clock import FakeClock

from kinema.accounts import keys
from kinema.domain.task import FailCode
from kinema.net.fetcher import SafeFetcher
from kinema.net.policy import FetchPolicy
from kinema.storage.signing import LinkSigner
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import NewTask, Stage
from kinema.webhooks.deliverer import Deliverer, DeliveryOptions

LEASE = 30_000


def finished_task(db: Database, clock: FakeClock, url: str, *, success: bool = True) -> tuple[str, str]:
    """An account with a task that just ended, its callback waiting in the outbox."""
    with db.write() as connection:
        account_id = keys.open_account(connection, "hooks", 1000, clock()).record.account_id
        new = NewTask(
            "hailuo/2-3-image-to-video-standard", '{"model":"m"}', {"prompt": "p"}, url, 30, ready=True
        )
        lifecycle.create_task(connection, account_id, new, clock(), 3_600_000)
    claim = lifecycle.claim_next(db, Stage.GENERATE, "w", clock(), LEASE, 10)
    assert claim is not None
    if success:
        assert lifecycle.finish_success(db, claim, {"video": "results/x/video.mp4"}, clock())
    else:
        assert lifecycle.finish_failure(db, claim, FailCode.GENERATION_FAILED, "no luck", clock())
    return account_id, claim.task.id


def make_deliverer(
    db: Database, clock: FakeClock, *, allow_private: bool = True, owner: str = "d1"
) -> Deliverer:
    options = DeliveryOptions(public_url="http://127.0.0.1:8000", link_seconds=3600, timeout_s=0.5)
    fetcher = SafeFetcher(FetchPolicy(allow_private=allow_private, total_timeout_s=0.5))
    return Deliverer(
        db, fetcher, LinkSigner(b"k" * 32), options, clock=clock, owner=owner, rng=random.Random(7)
    )
