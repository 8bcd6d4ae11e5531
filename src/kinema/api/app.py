"""The app factory: ``create_app(settings)`` wires the service; no state lives in modules.

The database must be migrated first (``kinema migrate``, which ``kinema serve`` runs itself).
With ``settings.workers > 0`` the app also runs that many generation workers in-process,
started and stopped with it.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware.cors import CORSMiddleware

import kinema
from kinema import runtime
from kinema.api.bodies import DEFAULT_BODY_BYTES, BodyCap, BodyLimit
from kinema.api.envelope import install_error_handlers
from kinema.api.fetches import UrlFetches
from kinema.api.files import files_router
from kinema.api.headers import AnswerHeaders
from kinema.api.openapi import install_openapi
from kinema.api.openapi_errors import install_error_docs
from kinema.api.ratelimit import RateLimits
from kinema.api.routes import (
    account,
    admin,
    callbacks,
    camera,
    docs,
    health,
    jobs,
    models,
    playground,
    samples,
    stream,
    uploads,
    webhooks,
)
from kinema.api.routes.health import TaskCollector
from kinema.api.services import Services
from kinema.catalog import PriceTable, default_catalog
from kinema.domain.clock import Clock, system_clock
from kinema.engines.base import Engine
from kinema.engines.camera_previews import CameraPreviews
from kinema.media.intake import DecodeSlots
from kinema.settings import Settings
from kinema.storage.own import OwnFiles, read_sample
from kinema.store.gateway import Gateway
from kinema.worker.runner import Worker
from kinema.worker.signals import CancelSignals, Wakeup

log = logging.getLogger("kinema.api")


def create_app(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    engine: Engine | None = None,
    settle_heap: bool = False,
) -> FastAPI:
    """The whole service as an ASGI app. `engine` stands in for the default engine the settings name.

    `settle_heap` is for a process that serves this one app for its life (``kinema serve``):
    once the app has started, what start-up made is moved out of the garbage collector's way.
    Left to it, each full collection walks those objects by the hundred thousand and holds up
    every request in flight for tens of milliseconds. A process that makes many apps (tests)
    leaves it off: each start would be a full collection of everything the process holds.
    """
    db = runtime.open_database(settings)
    store = runtime.open_store(settings)
    catalog = default_catalog()
    registry = CollectorRegistry()
    engines = runtime.load_engines(settings, db, clock, default=engine)
    signer = runtime.link_signer(settings, db, clock(), store)
    fetch_policy = runtime.fetch_policy(settings)
    deliverer = runtime.build_deliverer(settings, db, clock=clock, policy=fetch_policy)
    found = Services(
        settings=settings,
        db=db,
        store=store,
        signer=signer,
        catalog=catalog,
        prices=PriceTable.from_config(catalog, settings.prices),
        engines={name: loaded.info for name, loaded in engines.items()},
        router=runtime.engine_router(settings),
        limits=RateLimits(
            settings.rate_limit_storage_url,
            settings.create_task_rate_limit,
            settings.record_info_rate_limit,
            url_upload=settings.url_upload_rate_limit,
            redeliver=settings.redeliver_rate_limit,
        ),
        wakeup=Wakeup(),
        cancels=CancelSignals(),
        clock=clock,
        registry=registry,
        own_files=OwnFiles(settings.public_url, store, signer, lambda: clock() // 1000),
        upload_rules=runtime.upload_rules(settings),
        fetch_policy=fetch_policy,
        deliverer_wake=deliverer.wake,
        gateway=Gateway(db),
        url_fetches=UrlFetches(
            threads=settings.url_fetch_threads, per_account=settings.url_uploads_per_account
        ),
        decodes=DecodeSlots(settings.image_decodes_at_once),
    )
    registry.register(TaskCollector(found))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker: Worker | None = None
        deliverer.start()
        if settings.workers > 0:
            for loaded in engines.values():
                loaded.setup()
            worker = runtime.build_worker(
                settings,
                db,
                clock=clock,
                engines=engines,
                wakeup=found.wakeup,
                cancels=found.cancels,
                registry=registry,
                on_finished=deliverer.wake,
                policy=fetch_policy,
                decodes=found.decodes,
            )
            worker.start()
        if settle_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if settle_heap:
                gc.unfreeze()
            if worker is not None:
                worker.stop()
            found.gateway.close()
            found.url_fetches.close()
            deliverer.stop()
            db.dispose()

    app = FastAPI(
        title="Kinema",
        version=kinema.__version__,
        description="Self-hosted image-to-video generation, wire-compatible with the market-jobs API.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = found
    app.state.camera_previews = CameraPreviews(
        settings.data_dir / "previews", read_sample("sample.jpg") or b""
    )
    install_error_handlers(app, strict=settings.strict_http_status)
    jobs.add_hot_routes(app)
    for router in (
        jobs.router,
        stream.router,
        callbacks.router,
        uploads.router,
        webhooks.router,
        account.router,
        models.router,
        camera.router,
        health.router,
        samples.router,
        docs.router,
        playground.router,
    ):
        app.include_router(router)
    if settings.admin_token is not None:
        app.include_router(admin.router)
    app.include_router(files_router(store, found.signer, lambda: clock() / 1000))
    install_openapi(app, settings.public_url, catalog, found.engine_for)
    install_error_docs(app)  # over the document install_openapi builds
    app.add_middleware(
        BodyLimit,
        caps={jobs.CREATE_TASK_PATH: BodyCap.of_body(jobs.MAX_BODY_BYTES)}
        | uploads.body_caps(settings.upload_max_bytes),
        default=BodyCap.of_body(DEFAULT_BODY_BYTES),
        strict=settings.strict_http_status,
    )
    if settings.cors_origins:
        # Keys travel in the Authorization header, never in cookies: no credentials mode.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After"],
            max_age=600,
        )
    app.add_middleware(AnswerHeaders)  # the outermost: every answer of the app carries its headers
    return app
