"""What the routes need, built once per app (see `kinema.api.app.create_app`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fastapi import Request
from prometheus_client import CollectorRegistry

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
from kinema.worker.signals import CancelSignals, Wakeup


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

    def now_s(self) -> int:
        return self.clock() // 1000

    def engine_for(self, model: str) -> EngineInfo:
        return self.engines[self.router.name_for(model)]


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
