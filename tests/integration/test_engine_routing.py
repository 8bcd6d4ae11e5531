"""Models served by different engines, chosen by settings."""

from __future__ import annotations

import pytest
from tests.conftest import MakeSettings
from tests.support.service import running_app

from kinema.api.app import create_app
from kinema.domain.errors import EngineUnavailable

TEXT_MODEL = "hailuo/02-text-to-video-standard"
PLUGIN = "tests.support.engines:TextToVideoEngine"


def test_a_model_mapped_to_another_engine_is_served_by_it(make_settings: MakeSettings) -> None:
    with running_app(make_settings(workers=1, model_engines={TEXT_MODEL: PLUGIN})) as service:
        models = {model["model"]: model for model in service.client.get("/api/v1/models").json()["data"]}
        assert (models[TEXT_MODEL]["engine"], models[TEXT_MODEL]["available"]) == ("instant-text", True)
        assert models[TEXT_MODEL]["generatesContent"] is True
        seed = models["hailuo/2-3-image-to-video-standard"]
        assert (seed["engine"], seed["generatesContent"]) == ("instant", False)

        task_id = service.api.create({"model": TEXT_MODEL, "input": {"prompt": "a lighthouse at dusk"}})
        record = service.api.wait_state(task_id, "success", "fail")
        assert record["state"] == "success", record


def test_without_a_mapping_the_text_model_is_disabled(make_settings: MakeSettings) -> None:
    with running_app(make_settings()) as service:
        answer = service.api.post(
            "/api/v1/jobs/createTask", {"model": TEXT_MODEL, "input": {"prompt": "a lighthouse"}}
        )
        assert answer["code"] == 505


def test_an_unknown_engine_name_is_a_clear_startup_error(make_settings: MakeSettings) -> None:
    with pytest.raises(EngineUnavailable, match="unknown engine 'warp'"):
        create_app(make_settings(model_engines={TEXT_MODEL: "warp"}))
    with pytest.raises(EngineUnavailable, match="KINEMA_MINIMAX_API_KEY"):
        create_app(make_settings(engine="minimax"))
