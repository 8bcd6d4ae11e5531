"""Operability: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from kinema.api.auth import ServicesDep
from kinema.api.services import Services
from kinema.tasks import lifecycle
from kinema.worker import presence

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process answers")
def healthz() -> dict[str, Any]:
    return {"code": 200, "msg": "ok", "data": None}


@router.get("/readyz", summary="The service can take work")
def readyz(found: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        found.db.ping()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if found.db.is_at_head() else "not at head: run `kinema migrate`"
        checks["workers"] = "ok" if live_workers(found) > 0 else "no worker has been seen recently"
        degraded = degraded_engines(found)
        checks["engines"] = "ok" if not degraded else "degraded: " + "; ".join(degraded)
    except Exception as error:  # readiness reports any failure; it must never raise
        checks.setdefault("database", f"unreachable: {type(error).__name__}")
    trouble = found.db.troubles.recent()
    if trouble is not None and checks.get("database") == "ok":
        checks["database"] = f"failing: {trouble}"
    checks["disk"] = disk_status(found.settings.files_dir)
    ready = all(value == "ok" for value in checks.values())
    # Tasks of a model no live worker takes wait for one: worth saying, but the rest is served.
    unserved = unserved_models(found) if checks.get("workers") == "ok" else []
    if unserved:
        checks["models"] = "no live worker takes " + ", ".join(unserved)
    # Limits counted per process while Redis is away: worth saying, but the service still works.
    checks["rate_limits"] = found.limits.status
    body = {"code": 200 if ready else 503, "msg": "ready" if ready else "not ready", "data": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(found: ServicesDep) -> Response:
    return Response(generate_latest(found.registry), media_type=CONTENT_TYPE_LATEST)


#: Below this much free space where files are kept, the service says it is not ready.
MIN_FREE_BYTES: Final = 100 * 1024 * 1024


def disk_status(folder: Path) -> str:
    free = free_bytes(folder)
    if free is None:
        return f"unreadable: {folder}"
    if free < MIN_FREE_BYTES:
        return f"low: {free // (1024 * 1024)} MB free in {folder}"
    return "ok"


def free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def unserved_models(found: Services) -> list[str]:
    """The models this server offers that no live worker takes: their tasks wait for one."""
    served = presence.served_models(found.db, found.clock(), round(found.settings.lease_seconds * 1000))
    if served is None:
        return []
    return [model for model in found.catalog.names if model not in served]


def live_workers(found: Services) -> int:
    return presence.live_workers(found.db, found.clock(), round(found.settings.lease_seconds * 1000))


def degraded_engines(found: Services) -> list[str]:
    """Why live workers' engines cannot work (a refused upstream key, say), if any."""
    return presence.degraded_engines(found.db, found.clock(), round(found.settings.lease_seconds * 1000))


class TaskCollector(Collector):
    """Task counts and queue age, read from the database at each scrape (so every replica agrees)."""

    def __init__(self, found: Services) -> None:
        self._found = found

    def collect(self) -> Any:
        found = self._found
        with found.db.read() as connection:
            counts = lifecycle.count_by_state(connection)
            oldest = lifecycle.oldest_queued_at(connection)
        by_state = GaugeMetricFamily("kinema_tasks", "Tasks in the database, by state.", labels=["state"])
        for state, count in counts.items():
            by_state.add_metric([state.value], count)
        yield by_state
        age = 0.0 if oldest is None else max(0.0, (found.clock() - oldest) / 1000)
        yield GaugeMetricFamily(
            "kinema_queue_age_seconds", "Age of the oldest task not yet generating.", value=age
        )
        yield GaugeMetricFamily(
            "kinema_workers_alive", "Workers seen within a lease.", value=live_workers(found)
        )
        free = free_bytes(found.settings.files_dir)
        if free is not None:
            yield GaugeMetricFamily(
                "kinema_disk_free_bytes", "Free space where the service keeps its files.", value=free
            )
        failures = CounterMetricFamily(
            "kinema_database_failures",
            "Calls answered 503 or 507 because the database was busy, away or full, by kind.",
            labels=["kind"],
        )
        for kind, count in found.db.troubles.counts.items():
            failures.add_metric([kind], count)
        yield failures
        yield GaugeMetricFamily(
            "kinema_rate_limit_storage_up",
            "1 while rate limits are counted in their configured storage, 0 while it is unreachable.",
            value=1 if found.limits.shared_up else 0,
        )
