"""The OpenAPI document behind ``/docs``: the Bearer scheme on every call that needs a key, and
an example request and answer for every route, so that each can be tried from the page.

The examples are the seed's (the published document's) own, with one change: the image is this
server's sample, so that "Try it out" on createTask works on a machine without the internet.
createTask and recordInfo read their header themselves (see ``PlainRoute``); their operations
get the scheme here rather than an ``authorization`` parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kinema.api import openapi_patterns
from kinema.api.auth import API_KEY_SCHEME
from kinema.api.routes.uploads import FILE_NAME_SCHEMA, IMAGE_TYPES, UPLOAD_PATH_SCHEMA
from kinema.catalog import MAX_URL_LENGTH, Catalog, FieldKind, ForbiddenCombination, ModelSpec
from kinema.engines.base import EngineInfo

SEED_MODEL: Final = "hailuo/2-3-image-to-video-standard"
SEED_PROMPT: Final = (
    "Two armored medieval knights clash in an intense duel at sunset, cinematic lighting. Metal armor "
    "reflects warm golden light from the sun and the glowing swords. Sparks explode as the swords "
    "collide. Dynamic camera movement, shallow depth of field, dramatic slow motion. The scene takes "
    "place in an open desert battlefield, dust in the air, warm orange sun behind them, epic atmosphere. "
    "Highly detailed armor textures, realistic reflections, volumetric lighting, cinematic quality."
)
TASK_ID: Final = "3f0c9a7e5b1d4c2f8e6a0b9d7c5e3f1a"
#: A 1x1 PNG: small enough to read, and a real image.
TINY_PNG: Final = "data:image/png;base64," + (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def install_openapi(
    app: FastAPI, public_url: str, catalog: Catalog, engine_for: Callable[[str], EngineInfo]
) -> None:
    """Have `app` answer ``/openapi.json`` with the document described above, built once; the
    models' inputs as far as their engines (`engine_for`) run them."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            built = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _bearer_everywhere(built)
            known = examples(public_url.rstrip("/"))
            known[("POST", "/api/v1/jobs/createTask")]["request_schema"] = create_task_schema(
                catalog, engine_for
            )
            _add_examples(built, known)
            app.openapi_schema = built
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _bearer_everywhere(document: dict[str, Any]) -> None:
    """A plain ``authorization`` header parameter becomes the API key's Bearer scheme."""
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.setdefault(API_KEY_SCHEME, {"type": "http", "scheme": "bearer", "description": "Your API key."})
    for operation in _operations(document):
        parameters = operation.get("parameters", [])
        kept = [p for p in parameters if not (p["in"] == "header" and p["name"].lower() == "authorization")]
        if len(kept) != len(parameters):
            operation["security"] = [{API_KEY_SCHEME: []}]
            if kept:
                operation["parameters"] = kept
            else:
                del operation["parameters"]


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [operation for item in document.get("paths", {}).values() for operation in item.values()]


def _add_examples(document: dict[str, Any], known: dict[tuple[str, str], dict[str, Any]]) -> None:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            example = known.get((method.upper(), _unprefixed(path)))
            if example is None:
                continue
            if "request" in example:
                body = operation.setdefault("requestBody", {"required": True, "content": {}})
                media = example.get("request_type", "application/json")
                content = body.setdefault("content", {}).setdefault(media, {})
                if "request_schema" in example or "schema" not in content:
                    content["schema"] = example.get("request_schema", {"type": "object"})
                content["example"] = example["request"]
                if "request_encoding" in example:
                    content["encoding"] = example["request_encoding"]
            for parameter in operation.get("parameters", []):
                if parameter["name"] in example.get("parameters", {}):
                    parameter["example"] = example["parameters"][parameter["name"]]
            answer = operation.setdefault("responses", {}).setdefault("200", {"description": "Success"})
            media = example.get("answer_type", "application/json")
            answer.setdefault("content", {}).setdefault(media, {})["example"] = example["answer"]


def create_task_schema(catalog: Catalog, engine_for: Callable[[str], EngineInfo]) -> dict[str, Any]:
    """createTask's body on this server: a branch per model its engines run, with that model's
    ``input`` as far as the model's engine (`engine_for`) takes it.

    What the validation refuses is said here too: no key beside ``model``, ``callBackUrl`` and
    ``input``, and no combination a model's rules forbid (defaults count: on a model whose
    resolution defaults to 1080P, 10 seconds alone is refused). What the engine cannot do (a
    model, a duration or a resolution) is answered 505 and is left out.
    """
    branches = []
    for model in catalog:
        served = input_schema(model, engine_for(model.name))
        if served is None:
            continue
        branches.append(
            {
                "title": model.name,
                "type": "object",
                "required": ["model", "input"],
                "properties": {
                    "model": {"type": "string", "const": model.name},
                    "callBackUrl": web_url("A URL that receives the task's record when it ends (optional).")
                    | {"type": ["string", "null"]},
                    "input": served,
                },
                "additionalProperties": False,
            }
        )
    disabled = [model.name for model in catalog if input_schema(model, engine_for(model.name)) is None]
    described = "The model, where to call back, and the model's input (GET /api/v1/models)."
    if disabled:
        described += f" Not run here (code 505): {', '.join(disabled)}."
    schema: dict[str, Any] = {"type": "object", "description": described, "required": ["model", "input"]}
    if branches:
        schema["oneOf"] = branches
    return schema


def web_url(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "format": "uri",
        "pattern": openapi_patterns.WEB_URL,
        "maxLength": MAX_URL_LENGTH,
        "description": description,
    }


def input_schema(model: ModelSpec, engine: EngineInfo) -> dict[str, Any] | None:
    """`model`'s ``input`` as the validation checks it (`kinema.catalog.validation`) and `engine`
    serves it, its cross-field rules as ``not``; None when the engine cannot run the model at all.

    As the validation reads it: null is an optional field left out, a duration may be the
    integer, a resolution any letter case.
    """
    if model.capability not in engine.capabilities:
        return None
    if model.output_resolution is not None and model.output_resolution not in engine.resolutions:
        return None
    served = {
        "duration": [str(duration) for duration in engine.durations],
        "resolution": [resolution.value for resolution in engine.resolutions],
    }
    schema: dict[str, Any] = dict(model.json_schema())
    properties = dict(schema["properties"])
    required = list(schema["required"])
    for field in model.fields:
        shown = dict(properties[field.name])
        if field.kind is FieldKind.URL:
            shown = web_url(field.description)
        elif field.kind is FieldKind.TEXT:
            shown["pattern"] = openapi_patterns.TEXT
        elif field.kind is FieldKind.CHOICE:
            choices = [choice for choice in field.choices if choice in served.get(field.name, field.choices)]
            if not choices:
                return None
            if field.default not in choices:  # a default the engine cannot do: the field must be given
                shown.pop("default", None)
                required.append(field.name)
            spellings: list[str | int] = list(choices)
            if field.accepts_integers:
                spellings += [int(choice) for choice in choices]
                shown["type"] = ["string", "integer"]
            if field.case_insensitive:
                spellings += [other for choice in choices if (other := choice.swapcase()) != choice]
            shown["enum"] = spellings
        if field.name not in required:
            shown["type"] = [*_types(shown), "null"]
            if "enum" in shown:
                shown["enum"] = [*shown["enum"], None]
        properties[field.name] = shown
    schema["properties"] = properties
    schema["required"] = required
    forbidden = [_forbidden(model, rule) for rule in model.rules]
    if forbidden:
        schema["not"] = forbidden[0] if len(forbidden) == 1 else {"anyOf": forbidden}
    return schema


def _types(schema: dict[str, Any]) -> list[str]:
    types = schema.get("type", [])
    return [types] if isinstance(types, str) else list(types)


def _forbidden(model: ModelSpec, rule: ForbiddenCombination) -> dict[str, Any]:
    """The inputs `rule` refuses: each of its fields at its value in any spelling the validation
    reads, or left out (absent or null) where that value is the default."""
    conditions: list[dict[str, Any]] = []
    for name, value in rule.values:
        field = model.field(name)
        spellings: list[Any] = [value]
        if field is not None and isinstance(value, str):
            if field.accepts_integers:
                spellings.append(int(value))
            if field.case_insensitive and value.swapcase() != value:
                spellings.append(value.swapcase())
        given = {"required": [name], "properties": {name: {"enum": spellings}}}
        if field is not None and field.default == value:
            spellings.append(None)
            conditions.append({"anyOf": [given, {"not": {"required": [name]}}]})
        else:
            conditions.append(given)
    return {"allOf": conditions}


def _unprefixed(path: str) -> str:
    """The upload routes are also served under ``/file-upload``; they share their examples."""
    return path.removeprefix("/file-upload")


def _ok(data: Any, msg: str = "success") -> dict[str, Any]:
    return {"code": 200, "msg": msg, "data": data}


def examples(base: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every route's example, by method and path, with links on this server's address `base`."""
    sample = f"{base}/samples/sample.jpg"
    create = {
        "model": SEED_MODEL,
        "callBackUrl": "https://your-domain.com/api/callback",
        "input": {"prompt": SEED_PROMPT, "image_url": sample, "duration": "6", "resolution": "768P"},
    }
    files = f"{base}/files/results/acct/{TASK_ID}"
    record = {
        "taskId": TASK_ID,
        "model": SEED_MODEL,
        "state": "success",
        "param": (
            f'{{"model":"{SEED_MODEL}","callBackUrl":"https://your-domain.com/api/callback",'
            f'"input":{{"prompt":"[Push in] Two armored medieval knights clash","image_url":"{sample}",'
            '"duration":"6","resolution":"768P"}}'
        ),
        "resultJson": f'{{"resultUrls":["{files}/video.mp4?expires=1765269420&signature=..."]}}',
        "failCode": "",
        "failMsg": "",
        "costTime": 2150,
        "creditsConsumed": 30,
        "progress": 100,
        "createTime": 1765182986510,
        "updateTime": 1765182988660,
        "completeTime": 1765182988660,
        "firstFrameUrl": f"{files}/first.jpg?expires=1765269420&signature=...",
        "lastFrameUrl": f"{files}/last.jpg?expires=1765269420&signature=...",
    }
    upload_data: dict[str, Any] = {
        "fileName": "sample.jpg",
        "filePath": "images/sample.jpg",
        "downloadUrl": f"{base}/files/uploads/acct/images/sample.jpg?expires=1765442186&signature=...",
        "fileSize": 48213,
        "mimeType": "image/jpeg",
        "uploadedAt": "2026-12-08T08:36:26.510Z",
    }
    uploaded = {
        "success": True,
        "code": 200,
        "msg": "File uploaded successfully",
        "data": upload_data,
    }
    task_ref = {"taskId": TASK_ID}
    secret = _ok({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    return {
        ("POST", "/api/v1/jobs/createTask"): {
            "request": create,
            "parameters": {"Idempotency-Key": "order-2026-0001"},
            "answer": _ok(task_ref),
        },
        ("GET", "/api/v1/jobs/recordInfo"): {"parameters": {"taskId": TASK_ID}, "answer": _ok(record)},
        ("GET", "/api/v1/jobs/list"): {
            "parameters": {"pageSize": 20},
            "answer": _ok({"tasks": [record], "nextCursor": None}),
        },
        ("POST", "/api/v1/jobs/cancel"): {
            "request": task_ref,
            "answer": _ok(
                record
                | {
                    "state": "fail",
                    "resultJson": "",
                    "failCode": "499",
                    "failMsg": "canceled by the owner",
                    "creditsConsumed": 0,
                    "progress": 0,
                    "firstFrameUrl": None,
                    "lastFrameUrl": None,
                }
            ),
        },
        ("GET", "/api/v1/jobs/stream"): {
            "parameters": {"taskId": TASK_ID},
            "answer_type": "text/event-stream",
            "answer": (
                f'event: state\ndata: {{"taskId":"{TASK_ID}","state":"generating","progress":40}}\n\n'
                'event: record\ndata: {"taskId":"...","state":"success",...}\n\n'
            ),
        },
        ("GET", "/api/v1/jobs/callbacks"): {
            "parameters": {"taskId": TASK_ID},
            "answer": _ok(
                {
                    "taskId": TASK_ID,
                    "callBackUrl": "https://your-domain.com/api/callback",
                    "deliveries": [
                        {
                            "webhookId": "msg_2Qm3hXvYp0aB7cD9eF1gH4iJ",
                            "url": "https://your-domain.com/api/callback",
                            "state": "delivered",
                            "createTime": 1765182988660,
                            "deliveredTime": 1765182988912,
                            "nextAttemptTime": None,
                            "attempts": [
                                {
                                    "number": 1,
                                    "time": 1765182988700,
                                    "status": 200,
                                    "latencyMs": 212,
                                    "error": "",
                                }
                            ],
                        }
                    ],
                }
            ),
        },
        ("POST", "/api/v1/jobs/callbacks/redeliver"): {
            "request": task_ref,
            "answer": _ok({"webhookId": "msg_2Qm3hXvYp0aB7cD9eF1gH4iK"}),
        },
        ("POST", "/api/file-stream-upload"): {
            "request_type": "multipart/form-data",
            "request_schema": {
                "type": "object",
                "required": ["file", "uploadPath"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": f"The image ({IMAGE_TYPES}).",
                    },
                    "uploadPath": UPLOAD_PATH_SCHEMA,
                    "fileName": FILE_NAME_SCHEMA | {"description": "Its name; the part's own when absent."},
                },
            },
            # The file is stored only if its content is one of these types.
            "request_encoding": {"file": {"contentType": IMAGE_TYPES}},
            "request": {"uploadPath": "images", "fileName": "sample.jpg"},
            "answer": uploaded,
        },
        ("POST", "/api/file-url-upload"): {
            "request": {"fileUrl": sample, "uploadPath": "images", "fileName": "sample.jpg"},
            "answer": uploaded,
        },
        ("POST", "/api/file-base64-upload"): {
            "request": {"base64Data": TINY_PNG, "uploadPath": "images", "fileName": "dot.png"},
            "answer": uploaded
            | {"data": upload_data | {"fileName": "dot.png", "filePath": "images/dot.png"}},
        },
        ("POST", "/api/v1/common/download-url"): {
            "request": {"url": f"{files}/video.mp4?expires=1765269420&signature=..."},
            "answer": _ok(f"{files}/video.mp4?expires=1765184189&signature=..."),
        },
        ("GET", "/api/v1/webhooks/secret"): {"answer": secret},
        ("POST", "/api/v1/webhooks/secret/rotate"): {"answer": secret},
        ("GET", "/api/v1/chat/credit"): {"answer": _ok(970)},
        ("GET", "/api/v1/models"): {
            "answer": _ok(
                [
                    {
                        "model": SEED_MODEL,
                        "description": "Hailuo 2.3 image to video, standard.",
                        "capability": "image-to-video",
                        "available": True,
                        "engine": "motion",
                        "generatesContent": False,
                        "input": {"type": "object", "required": ["prompt", "image_url"], "properties": {}},
                        "prices": [{"duration": "6", "resolution": "768P", "credits": 30}],
                    }
                ]
            )
        },
        ("POST", "/api/v1/kinema/camera-plan"): {
            "request": {"prompt": "[Pan lft, Tilt up] A harbour at dawn [Push in]"},
            "answer": _ok(
                {
                    "summary": "Tilt up, then Push in",
                    "source": "brackets",
                    "segments": [
                        {"moves": [{"move": "tilt_up", "name": "Tilt up"}], "start": 0.0, "end": 0.5},
                        {"moves": [{"move": "push_in", "name": "Push in"}], "start": 0.5, "end": 1.0},
                    ],
                    "unknown": [
                        {
                            "text": "Pan lft",
                            "suggestion": "Pan left",
                            "warning": "[Pan lft] is not a camera command; did you mean [Pan left]?",
                        }
                    ],
                }
            ),
        },
        ("GET", "/healthz"): {"answer": {"code": 200, "msg": "ok", "data": None}},
        ("GET", "/readyz"): {
            "answer": {
                "code": 200,
                "msg": "ready",
                "data": {"database": "ok", "migrations": "ok", "workers": "ok", "engines": "ok"},
            }
        },
        ("POST", "/api/v1/admin/keys"): {
            "request": {"name": "alice", "credits": 1000},
            "answer": _ok({"key": "kn_...", "keyId": "k_6f1c", "accountId": "a_91d2"}),
        },
        ("GET", "/api/v1/admin/keys"): {
            "answer": _ok(
                [
                    {
                        "keyId": "k_6f1c",
                        "accountId": "a_91d2",
                        "account": "alice",
                        "name": "alice",
                        "prefix": "kn_Q2xk7",
                        "createTime": 1765182986510,
                        "revokeTime": None,
                    }
                ]
            )
        },
        ("POST", "/api/v1/admin/keys/revoke"): {
            "request": {"key": "kn_Q2xk7"},
            "answer": _ok({"keyId": "k_6f1c"}),
        },
        ("POST", "/api/v1/admin/credits"): {
            "request": {"account": "alice", "amount": 500},
            "answer": _ok({"accountId": "a_91d2", "balance": 1500}),
        },
    }
