"""What the routes need, built once per app (see `kinema.api.app.create_app`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import ParamSpec, TypeVar

from fastapi import Request
from prometheus_client import CollectorRegistry

from kinema.api.fetches import UrlFetches
from kinema.api.ratelimit import RateLimits
from kinema.catalog import Catalog, PriceTable
from kinema.domain.clock import Clock
from kinema.engines.base import EngineInfo
from kinema.engines.routing import EngineRouter
from kinema.files.uploads import UploadRules
from kinema.media.intake import DecodeSlots
from kinema.net.policy import FetchPolicy
from kinema.settings import Settings
from kinema.storage.base import BlobStore
from kinema.storage.own import OwnFiles
from kinema.storage.signing import LinkSigner
from kinema.store.database import Database
from kinema.store.gateway import Gateway
from kinema.tasks.submit import SubmitPorts
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
    fetch_policy: FetchPolicy  #: The one policy for user-given URLs (`kinema.runtime.fetch_policy`).
    deliverer_wake: Callable[[], None]
    gateway: Gateway
    url_fetches: UrlFetches  #: Where URL uploads fetch, off the request pool (`kinema.api.fetches`).
    decodes: DecodeSlots  #: The process's turns at decoding an image, shared with its workers.

    def now_s(self) -> int:
        return self.clock() // 1000

    async def read_quickly(self, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a short read where it costs least (`Gateway.read`): the event loop never waits."""
        return await self.gateway.read(read, *args, **kwargs)

    def engine_for(self, model: str) -> EngineInfo:
        return self.engines[self.router.name_for(model)]

    @cached_property
    def submit_ports(self) -> SubmitPorts:
        """What `kinema.tasks.submit` needs, built on first use."""
        return SubmitPorts(
            gateway=self.gateway,
            store=self.store,
            own_files=self.own_files,
            catalog=self.catalog,
            prices=self.prices,
            engine_for=self.engine_for,
            clock=self.clock,
            task_timeout_ms=round(self.settings.task_timeout_seconds * 1000),
            idempotency_ttl_ms=round(self.settings.idempotency_hours * 3600 * 1000),
            decodes=self.decodes,
        )


async def services(request: Request) -> Services:
    """The app's services. Async, so FastAPI calls it on the event loop, not in a thread."""
    found: Services = request.app.state.services
    return found
