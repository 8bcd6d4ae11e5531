"""What the routes need, built once per app (see `kinema.api.app.create_app`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from fastapi import Request
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from kinema.api.ratelimit import RateLimits
from kinema.catalog import Catalog, PriceTable
from kinema.domain.clock import Clock
from kinema.engines.base import EngineInfo
from kinema.engines.routing import EngineRouter
from kinema.files.uploads import UploadRules
from kinema.settings import Settings
from kinema.storage.base import BlobStore
from kinema.storage.own import OwnFiles
from kinema.storage.signing import LinkSigner
from kinema.store.database import Database
from kinema.store.writer import LoopWriter
from kinema.worker.signals import CancelSignals, Wakeup

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    db: Database
    store: BlobStore
    signer: LinkSigner
    catalog: Catalog
    prices: PriceTable
    engines: Mapping[str, EngineInfo]
    router: EngineRouter
    limits: RateLimits
    wakeup: Wakeup
    cancels: CancelSignals
    clock: Clock
    registry: CollectorRegistry
    own_files: OwnFiles
    upload_rules: UploadRules
    deliverer_wake: Callable[[], None]
    writer: LoopWriter

    def now_s(self) -> int:
        return self.clock() // 1000

    async def read_quickly(self, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a short read: on the event loop for SQLite, in the thread pool otherwise.

        A SQLite read in WAL mode never waits for a lock and takes microseconds, far less than
        the trip to a thread and back (and the fight for the GIL between many threads) costs.
        A server's reads wait on the network, so they go to a thread.
        """
        if self.db.is_sqlite:
            return read(*args, **kwargs)
        return await run_in_threadpool(read, *args, **kwargs)

    def engine_for(self, model: str) -> EngineInfo:
        return self.engines[self.router.name_for(model)]


async def services(request: Request) -> Services:
    """The app's services. Async, so FastAPI calls it on the event loop, not in a thread."""
    found: Services = request.app.state.services
    return found
