"""Calling the API in tests, in-process or against a live server."""

from __future__ import annotations

from typing import Any

import httpx
from tests.support.polling import wait_for

SEED_MODEL = "hailuo/2-3-image-to-video-standard"


def seed_body(image_url: str, **input_overrides: Any) -> dict[str, Any]:
    """The seed's example request, with our image."""
    return {
        "model": SEED_MODEL,
        "callBackUrl": "https://your-domain.com/api/callback",
        "input": {
            "prompt": "Two armored medieval knights clash in an intense duel at sunset, cinematic lighting.",
            "image_url": image_url,
            "duration": "6",
            "resolution": "768P",
        }
        | input_overrides,
    }


class Api:
    """One caller with one key."""

    def __init__(self, client: httpx.Client, key: str) -> None:
        self.client = client
        self.key = key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, path: str, body: Any) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.headers)
        answer: dict[str, Any] = response.json()
        return answer

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.client.get(path, params=params, headers=self.headers)
        answer: dict[str, Any] = response.json()
        return answer

    def create(self, body: Any) -> str:
        answer = self.post("/api/v1/jobs/createTask", body)
        assert answer["code"] == 200, answer
        task_id: str = answer["data"]["taskId"]
        return task_id

    def record(self, task_id: str) -> dict[str, Any]:
        answer = self.get("/api/v1/jobs/recordInfo", taskId=task_id)
        assert answer["code"] == 200, answer
        data: dict[str, Any] = answer["data"]
        return data

    def balance(self) -> int:
        answer = self.get("/api/v1/chat/credit")
        assert answer["code"] == 200, answer
        return int(answer["data"])

    def wait_state(self, task_id: str, *states: str, timeout_s: float = 30.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            record = self.record(task_id)
            return record if record["state"] in states else None

        return wait_for(probe, timeout_s, f"task {task_id} to reach {' or '.join(states)}")
