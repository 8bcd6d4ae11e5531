"""Workers by capability: each takes only the models it serves, and drains when it stops."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.engines import GatedEngine
from tests.support.http import ImageHost
from tests.support.polling import wait_for
from tests.support.service import running_app

from kinema import runtime
from kinema.domain.clock import system_clock
from kinema.domain.errors import EngineMisconfigured
from kinema.settings import Settings
from kinema.store.database import Database
from kinema.worker.runner import Worker

SEED_MODEL = "hailuo/2-3-image-to-video-standard"
TEXT_MODEL = "hailuo/02-text-to-video-standard"
INSTANT = "tests.support.engines:InstantEngine"
TEXT = "tests.support.engines:TextToVideoEngine"


@contextmanager
def _worker(settings: Settings) -> Iterator[Worker]:
    db = Database(settings.database_url)
    worker = runtime.build_worker(settings, db, clock=system_clock)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        db.dispose()


def test_each_worker_takes_only_its_models_and_the_others_wait_for_one(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    routes = {"engine": INSTANT, "model_engines": {TEXT_MODEL: TEXT}}
    with running_app(make_settings(workers=0, **routes)) as service:
        image = seed_body(image_server.add("/a.jpg", sample_jpeg))
        with _worker(make_settings(workers=1, worker_engines=[TEXT], **routes)):
            text = service.api.create({"model": TEXT_MODEL, "input": {"prompt": "a lighthouse at dusk"}})
            seeded = service.api.create(image)
            assert service.api.wait_state(text, "success", "fail")["state"] == "success"
            models = {entry["model"]: entry["served"] for entry in service.api.get("/api/v1/models")["data"]}
            assert models[TEXT_MODEL] is True
            assert models[SEED_MODEL] is False
            ready = service.client.get("/readyz").json()
            assert ready["data"]["models"].startswith("no live worker takes ")
            assert SEED_MODEL in ready["data"]["models"]
            assert ready["code"] == 200, "tasks of the other models are still served"
            # Not even its image is fetched: intake is the serving worker's too.
            assert service.api.record(seeded)["state"] == "waiting"
        with _worker(make_settings(workers=1, worker_engines=[INSTANT], **routes)):
            assert service.api.wait_state(seeded, "success", "fail")["state"] == "success"


def test_a_worker_asked_for_what_serves_nothing_here_is_refused_with_what_to_change(
    make_settings: MakeSettings,
) -> None:
    routes = {"engine": INSTANT, "model_engines": {TEXT_MODEL: TEXT}}
    with pytest.raises(EngineMisconfigured, match=re.escape(f"runs on the {TEXT} engine")):
        runtime.worker_scope(make_settings(worker_engines=[INSTANT], worker_models=[TEXT_MODEL], **routes))
    with pytest.raises(EngineMisconfigured, match="serves no model here"):
        runtime.worker_scope(make_settings(worker_engines=["diffusers"], **routes))
    with pytest.raises(EngineMisconfigured, match="a model this server does not offer"):
        runtime.worker_scope(make_settings(worker_models=["hailuo/nothing"], **routes))
    everything = runtime.worker_scope(make_settings(**routes))
    assert (everything.engines, everything.models) == ((INSTANT, TEXT), None)
    one = runtime.worker_scope(make_settings(worker_models=[SEED_MODEL], **routes))
    assert (one.engines, one.models) == ((INSTANT, TEXT), frozenset({SEED_MODEL}))


@pytest.mark.parametrize("finishes", [True, False], ids=["finishes-within-the-grace", "handed-back"])
def test_a_stopping_worker_lets_its_task_finish_within_the_grace_or_hands_it_back(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes, finishes: bool
) -> None:
    engine = GatedEngine()
    settings = make_settings(workers=0)
    with running_app(settings) as service:
        task_id = service.api.create(seed_body(image_server.add("/a.jpg", sample_jpeg)))
        db = Database(settings.database_url)
        worker = runtime.build_worker(
            make_settings(workers=1, drain_seconds=60 if finishes else 0.2),
            db,
            clock=system_clock,
            engines={"motion": engine},
        )
        worker.start()
        try:
            assert engine.started.wait(30)
            stopping = threading.Thread(target=worker.stop)
            stopping.start()
            if finishes:
                # Stopping, the worker claims nothing more, but lets the running task end.
                wait_for(lambda: worker.closing, what="the worker to stop claiming")
                engine.allow(10_000)
            stopping.join(60)
            assert not stopping.is_alive()
        finally:
            db.dispose()
        record = service.api.record(task_id)
        if finishes:
            assert record["state"] == "success"
        else:
            assert record["state"] == "queuing"
            assert engine.frames_done < 150
