"""Composition: builds the service's parts from settings. Used by the app, the CLI and tests."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from limits import parse as parse_limit
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from kinema.catalog import Catalog, default_catalog
from kinema.domain.clock import Clock
from kinema.domain.errors import EngineMisconfigured, EngineUnavailable
from kinema.engines.base import Engine
from kinema.engines.diffusers.config import DiffusersConfig
from kinema.engines.isolated import isolated
from kinema.engines.minimax.config import MinimaxConfig
from kinema.engines.motion.config import MotionConfig
from kinema.engines.registry import load_engine
from kinema.engines.routing import EngineRouter
from kinema.files.retention import RetentionPolicy
from kinema.files.uploads import UploadRules
from kinema.media.intake import DecodeSlots
from kinema.net.fetcher import SafeFetcher
from kinema.net.policy import FetchPolicy
from kinema.settings import Settings
from kinema.storage.base import BlobStore
from kinema.storage.local import STAGING_DIR, LocalBlobStore
from kinema.storage.own import OwnFiles
from kinema.storage.s3 import S3BlobStore, S3Options
from kinema.storage.signing import BucketLinks, LinkSigner
from kinema.store import secrets as secrets_store
from kinema.store.database import Database
from kinema.store.gate import LocalRateGate, SqlRateGate
from kinema.webhooks.deliverer import Deliverer, DeliveryOptions
from kinema.worker.runner import Worker, WorkerMetrics, WorkerOptions
from kinema.worker.signals import CancelSignals, Wakeup

_LINK_SECRET = "link-signing"


def open_database(settings: Settings) -> Database:
    return Database(
        settings.database_url, busy_timeout_ms=round(settings.database_busy_timeout_seconds * 1000)
    )


def open_store(settings: Settings) -> BlobStore:
    """The store `KINEMA_STORAGE` names: the local folder, or the S3 bucket."""
    if settings.storage == "s3":
        # Files being made are staged where local files would be, so the disk check of
        # `/readyz` still watches the disk they need.
        return S3BlobStore(s3_options(settings), staging_root=settings.files_dir / STAGING_DIR)
    return LocalBlobStore(settings.files_dir)


def s3_options(settings: Settings) -> S3Options:
    def secret(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    return S3Options(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url or None,
        region=settings.s3_region or None,
        access_key_id=secret(settings.s3_access_key_id),
        secret_access_key=secret(settings.s3_secret_access_key),
        path_style=settings.s3_path_style,
        multipart_threshold_bytes=settings.s3_multipart_threshold_bytes,
        max_attempts=settings.s3_max_attempts,
        timeout_s=settings.s3_timeout_seconds,
    )


def link_signer(settings: Settings, db: Database, now: int, store: BlobStore | None = None) -> LinkSigner:
    """The signer of file links: the configured secret, else one kept in the database.

    Kept in the database, every replica and worker signs with the same secret and restarts
    keep old links valid, with nothing to configure. With S3 and presigned links, the links it
    hands out are the bucket's (made by `store`, or by a store of its own when none is given).
    """
    links = bucket_links(settings, store)
    if settings.secret_key is not None:
        return LinkSigner(settings.secret_key.get_secret_value().encode(), links)
    with db.write() as connection:
        stored = secrets_store.server_secret(
            connection, db.dialect, _LINK_SECRET, secrets.token_urlsafe(32), now
        )
    return LinkSigner(stored.encode(), links)


def bucket_links(settings: Settings, store: BlobStore | None = None) -> BucketLinks | None:
    """The bucket that serves the files itself, if the settings say it does."""
    if settings.storage != "s3" or settings.s3_links != "presigned":
        return None
    if isinstance(store, S3BlobStore):
        return store
    return S3BlobStore(s3_options(settings), staging_root=settings.files_dir / STAGING_DIR)


def upload_rules(settings: Settings) -> UploadRules:
    return UploadRules(max_bytes=settings.upload_max_bytes, allowed_types=frozenset(settings.upload_types))


def fetch_policy(settings: Settings) -> FetchPolicy:
    """What user-given URLs may reach: built here alone, once per process, and passed on.

    The image fetch, upload by URL and callbacks all go by it; each download's own size cap and
    each callback's timeout are given with the call.
    """
    return FetchPolicy(
        allow_private=settings.allow_private_urls,
        total_timeout_s=settings.fetch_timeout_seconds,
    )


@dataclass(frozen=True, slots=True)
class WorkerScope:
    """What one worker process takes: the engines it runs, and the models it claims."""

    engines: tuple[str, ...]
    models: frozenset[str] | None  #: None: every model (the worker runs every routed engine).


def worker_scope(settings: Settings, catalog: Catalog | None = None) -> WorkerScope:
    """The engines and models of a worker, from ``worker_engines`` and ``worker_models``.

    A worker takes only tasks it can serve; a model whose engine no live worker runs waits for
    one. A name that serves nothing here is refused with what to change.
    """
    catalog = catalog or default_catalog()
    router = engine_router(settings)
    engines = tuple(settings.worker_engines) or tuple(router.names)
    for name in engines:
        if name not in router.names:
            raise EngineMisconfigured(
                f"this worker is asked to run the {name} engine, which serves no model here: "
                f"route models to it with KINEMA_ENGINE or KINEMA_MODEL_ENGINES "
                f"(engines in use: {', '.join(router.names)})"
            )
    of_engines = {model for model in catalog.names if router.name_for(model) in engines}
    for model in settings.worker_models:
        if model not in catalog:
            raise EngineMisconfigured(
                f"this worker is asked to take {model}, a model this server does not offer"
            )
        if model not in of_engines:
            raise EngineMisconfigured(
                f"this worker is asked to take {model}, which runs on the {router.name_for(model)} "
                f"engine: run that engine too (--engine {router.name_for(model)})"
            )
    models = frozenset(settings.worker_models) or frozenset(of_engines)
    return WorkerScope(engines, None if models == set(catalog.names) else models)


def worker_options(settings: Settings, scope: WorkerScope | None = None) -> WorkerOptions:
    return WorkerOptions(
        models=None if scope is None else scope.models,
        drain_s=settings.drain_seconds,
        generation_threads=max(1, settings.workers),
        intake_threads=settings.intake_threads,
        intakes_per_account=settings.intakes_per_account,
        lease_s=settings.lease_seconds,
        poll_s=settings.poll_seconds,
        max_running_per_account=settings.max_running_per_account,
        max_attempts=settings.max_attempts,
        retention=RetentionPolicy(
            result_ms=round(settings.result_retention_days * 86_400_000),
            task_ms=round(settings.task_retention_days * 86_400_000),
        ),
        sweep_s=settings.sweep_seconds,
    )


def build_deliverer(
    settings: Settings, db: Database, *, clock: Clock, policy: FetchPolicy | None = None
) -> Deliverer:
    options = DeliveryOptions(
        public_url=settings.public_url,
        link_seconds=round(settings.result_link_seconds),
        schedule_s=tuple(settings.callback_retry_schedule),
        window_ms=round(settings.callback_retry_window_hours * 3600 * 1000),
        poll_s=settings.poll_seconds,
        timeout_s=settings.callback_timeout_seconds,
    )
    if policy is None:
        policy = fetch_policy(settings)
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    return Deliverer(
        db, SafeFetcher(policy), link_signer(settings, db, clock()), options, clock=clock, owner=owner
    )


def engine_router(settings: Settings) -> EngineRouter:
    return EngineRouter(settings.engine, dict(settings.model_engines))


def engine_config(settings: Settings, name: str, db: Database | None, clock: Clock) -> object | None:
    """The configuration an engine takes, from the settings; None for engines that take none.

    Without a database (`kinema render`), a remote engine's rate limit holds within the process,
    and the motion engine refuses to start without its matte model instead of filming flat.
    """
    if name == "motion":
        return MotionConfig(depth=settings.motion_depth == "on", flat_without_model=db is not None)
    if name == "minimax":
        if settings.minimax_api_key is None:
            raise EngineUnavailable("the minimax engine needs KINEMA_MINIMAX_API_KEY")
        limit = parse_limit(settings.minimax_rate_limit)
        window_ms = limit.get_expiry() * 1000
        return MinimaxConfig(
            api_key=settings.minimax_api_key.get_secret_value(),
            base_url=settings.minimax_base_url.rstrip("/"),
            poll_s=settings.minimax_poll_seconds,
            models=dict(settings.minimax_models),
            gate=(
                SqlRateGate(db, "minimax", limit.amount, window_ms, clock)
                if db is not None
                else LocalRateGate(limit.amount, window_ms, clock)
            ),
            clock=clock,
        )
    if name == "diffusers":
        return DiffusersConfig(
            model=settings.diffusers_model,
            weights_dir=settings.diffusers_weights_dir,
            offload=settings.diffusers_offload,
            vae_tiling=settings.diffusers_vae_tiling,
            steps=settings.diffusers_steps,
            seed=settings.diffusers_seed,
        )
    return None


def load_engines(
    settings: Settings,
    db: Database,
    clock: Clock,
    *,
    default: Engine | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, Engine]:
    """Every engine the settings route a model to (or those `names`), constructed but not set up.

    Those named in ``engine_process`` run in a child process of their own (set up there), so a
    crash of theirs is not the worker's. `default`, when given, stands in for the default engine
    (tests use an instant one).
    """
    engines: dict[str, Engine] = {}
    for name in engine_router(settings).names if names is None else names:
        if name == settings.engine and default is not None:
            engines[name] = default
        elif name in settings.engine_process:
            config = engine_config(settings, name, db, clock)
            engines[name] = isolated(name, config, stop_grace_s=settings.engine_stop_grace_seconds)
        else:
            engines[name] = load_engine(name, engine_config(settings, name, db, clock))
    return engines


def build_worker(
    settings: Settings,
    db: Database,
    *,
    clock: Clock,
    engines: Mapping[str, Engine] | None = None,
    wakeup: Wakeup | None = None,
    cancels: CancelSignals | None = None,
    registry: CollectorRegistry | None = None,
    on_finished: Callable[[], None] | None = None,
    policy: FetchPolicy | None = None,
    decodes: DecodeSlots | None = None,
) -> Worker:
    store = open_store(settings)
    own_files = OwnFiles(
        settings.public_url, store, link_signer(settings, db, clock(), store), lambda: clock() // 1000
    )
    scope = worker_scope(settings)
    if engines is None:
        engines = load_engines(settings, db, clock, names=scope.engines)
        for engine in engines.values():
            engine.setup()
    return Worker(
        db,
        engines,
        engine_router(settings),
        store,
        SafeFetcher(fetch_policy(settings) if policy is None else policy),
        worker_options(settings, scope),
        clock=clock,
        wakeup=wakeup,
        cancels=cancels,
        metrics=WorkerMetrics(registry),
        own_files=own_files,
        on_finished=on_finished,
        decodes=decodes or DecodeSlots(settings.image_decodes_at_once),
    )
