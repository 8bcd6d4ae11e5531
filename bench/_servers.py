"""The two ASGI apps `bench.api` serves with uvicorn, each built from environment variables.

Both are started the same way (``python -m uvicorn --factory bench._servers:NAME``, one
process, the same options), so the only difference measured is what the app does per request.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from fastapi import FastAPI, Request

#: recordInfo's whole answer, as Kinema gave it, for the bare app to return from a constant.
RECORD_ENV = "BENCH_RECORD_JSON"


def kinema_app() -> FastAPI:
    """The service, configured by ``KINEMA_*`` variables, built as ``kinema serve`` builds it."""
    from kinema.api.app import create_app
    from kinema.settings import Settings

    return create_app(Settings(), settle_heap=True)


def bare_app() -> FastAPI:
    """The same two routes with no work behind them: FastAPI's own cost for the same answers."""
    record: dict[str, Any] = json.loads(os.environ[RECORD_ENV])
    app = FastAPI()

    @app.get("/api/v1/jobs/recordInfo")
    async def record_info(taskId: str) -> dict[str, Any]:  # noqa: N803 - the wire's name
        return record

    @app.post("/api/v1/jobs/createTask")
    async def create_task(request: Request) -> dict[str, Any]:
        json.loads(await request.body())
        return {"code": 200, "msg": "success", "data": {"taskId": secrets.token_hex(16)}}

    return app
