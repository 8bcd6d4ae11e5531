"""``POST /api/v1/kinema/camera-plan`` (ext): the plan a prompt gives, typos flagged, no key needed."""

from __future__ import annotations

from tests.conftest import MakeSettings
from tests.support.service import running_app


def test_the_plan_and_the_unknown_commands(make_settings: MakeSettings) -> None:
    with running_app(make_settings()) as service:
        answer = service.client.post(
            "/api/v1/kinema/camera-plan", json={"prompt": "[Pan lft] a harbour [Tilt up]"}
        ).json()
    assert answer["code"] == 200, answer
    data = answer["data"]
    assert data["summary"] == "Tilt up"
    assert data["source"] == "brackets"
    assert data["unknown"] == [
        {
            "text": "Pan lft",
            "suggestion": "Pan left",
            "warning": "[Pan lft] is not a camera command; did you mean [Pan left]?",
        }
    ]


def test_bad_bodies_are_clear_422s(make_settings: MakeSettings) -> None:
    with running_app(make_settings()) as service:
        for body, message in (
            ({}, "prompt field required"),
            ({"prompt": 5}, "prompt input should be a valid string"),
            ({"prompt": "x" * 5001}, "prompt string should have at most 5000 characters"),
            ({"prompt": "x", "seed": 1}, "seed extra inputs are not permitted"),
        ):
            answer = service.client.post("/api/v1/kinema/camera-plan", json=body).json()
            assert (answer["code"], answer["msg"]) == (422, message), body
        broken = service.client.post(
            "/api/v1/kinema/camera-plan", content=b"{", headers={"Content-Type": "application/json"}
        ).json()
        assert broken["code"] == 422
