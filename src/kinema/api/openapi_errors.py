"""What ``/openapi.json`` says of answers: the envelope as every route's schema, and the codes
each route really gives.

FastAPI documents a 422 of its own (``{"detail": [...]}``) that this service never sends, and
knows nothing of the codes that travel in ``code``. Here each route lists the codes it answers,
from one table; the HTTP 200 answer's ``code`` is limited to them (in the default mode every
outcome arrives with HTTP 200), and each code that is a real HTTP status gets its own entry
for strict mode (``KINEMA_STRICT_HTTP_STATUS``). A 429 (rate limits) and a 500 (an unexpected
error) arrive with their own status in either mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI

from kinema.api.envelope import UPLOAD_ROUTES

#: What each code means, as the descriptions say it.
MEANINGS: Final[Mapping[int, str]] = {
    200: "success",
    400: "the request cannot be read (a missing taskId, a body that is not UTF-8, a broken multipart body)",
    401: "the key is missing, malformed, unknown or revoked",
    402: "the balance does not cover the price",
    404: "nothing matches the reference",
    413: "the request body is larger than the route takes",
    422: "a field breaks a rule; msg names the field and the rule",
    429: "over a rate limit (always HTTP 429, with Retry-After)",
    455: "the service is in maintenance",
    500: "an unexpected error (always HTTP 500)",
    503: "the database is busy or unreachable; nothing changed (always HTTP 503, with Retry-After)",
    505: "the model needs what the configured engine cannot do",
    507: "the disk is full; nothing was stored (always HTTP 507, with Retry-After)",
}
#: Where a code means something else on a route than `MEANINGS` says.
_MEANINGS_ON: Final[Mapping[tuple[str, str], Mapping[int, str]]] = {
    ("get", "/readyz"): {
        503: "not ready: data gives each check, and what is not ok says why (always HTTP 503)",
    },
}
#: Codes that arrive with their own HTTP status whatever the mode.
_ALWAYS_REAL: Final = frozenset({429, 500, 503, 507})
#: Codes that never come with HTTP 200.
_NEVER_200: Final = frozenset({429, 503, 507})
_STATUSES: Final = frozenset(status.value for status in HTTPStatus)
_STRICT_ONLY: Final = " (this HTTP status with KINEMA_STRICT_HTTP_STATUS, else HTTP 200)"

_KEYED: Final = (200, 401, 500, 503)
_READ: Final = (*_KEYED, 422)
_WRITE: Final = (*_READ, 413)
#: A JSON body that FastAPI reads: bytes it cannot decode as text answer 400.
_BODY: Final = (*_WRITE, 400)
_UPLOAD: Final = (*_BODY, 429, 455, 507)
_ADMIN: Final = (*_BODY, 404)
#: The codes each route answers, by path and method.
CODES: Final[Mapping[tuple[str, str], tuple[int, ...]]] = {
    ("post", "/api/v1/jobs/createTask"): (*_WRITE, 402, 429, 455, 505, 507),
    ("get", "/api/v1/jobs/recordInfo"): (*_READ, 400, 429),
    ("get", "/api/v1/jobs/list"): _READ,
    ("post", "/api/v1/jobs/cancel"): _BODY,
    ("get", "/api/v1/jobs/stream"): (*_READ, 400),
    ("get", "/api/v1/jobs/callbacks"): (*_READ, 400),
    ("post", "/api/v1/jobs/callbacks/redeliver"): (*_BODY, 429),
    ("post", "/api/v1/common/download-url"): _BODY,
    ("get", "/api/v1/webhooks/secret"): _KEYED,
    ("post", "/api/v1/webhooks/secret/rotate"): (*_KEYED, 413, 507),
    ("get", "/api/v1/chat/credit"): _KEYED,
    ("post", "/api/v1/admin/keys"): _BODY,
    ("get", "/api/v1/admin/keys"): _KEYED,
    ("post", "/api/v1/admin/keys/revoke"): _ADMIN,
    ("post", "/api/v1/admin/credits"): _ADMIN,
    # The camera plan needs no key: only the body can be wrong.
    ("post", "/api/v1/kinema/camera-plan"): (200, 400, 413, 422, 500),
    # Readiness needs no key either; a 503 there says which check failed.
    ("get", "/readyz"): (200, 500, 503),
} | {("post", f"{prefix}/api/{route}"): _UPLOAD for route in UPLOAD_ROUTES for prefix in ("", "/file-upload")}

_ENVELOPE: Final[dict[str, Any]] = {
    "type": "object",
    "description": "Every JSON answer: the outcome in code, words for a person in msg.",
    "required": ["code", "msg", "data"],
    "properties": {
        "code": {"type": "integer", "description": "The outcome; 200 is success."},
        "msg": {"type": "string", "description": "success, or what went wrong, naming the field."},
        "data": {"description": "What was asked for; null on an error."},
    },
}
_UPLOAD_ENVELOPE: Final[dict[str, Any]] = {
    "type": "object",
    "description": "The upload routes' answers: the envelope, with success as the upload API has it.",
    "required": ["success", "code", "msg", "data"],
    "properties": {"success": {"type": "boolean", "description": "code is 200."}} | _ENVELOPE["properties"],
}


def install_error_docs(app: FastAPI) -> None:
    """Have `app`'s OpenAPI document describe the envelope and each route's codes."""
    build: Callable[[], dict[str, Any]] = app.openapi
    described: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = build()
        if not described:
            described.append(describe_errors(schema))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (FastAPI's document) with the envelope as the error schema and the real codes."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Envelope"] = _ENVELOPE
    components["UploadEnvelope"] = _UPLOAD_ENVELOPE
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            codes = CODES.get((method, path))
            if codes is not None:
                upload = path.rsplit("/", 1)[-1] in UPLOAD_ROUTES
                meanings = {**MEANINGS, **_MEANINGS_ON.get((method, path), {})}
                operation["responses"] = _responses(
                    operation["responses"], sorted(set(codes)), upload, meanings
                )
    if "#/components/schemas/HTTPValidationError" not in json.dumps(schema.get("paths")):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    return schema


def _responses(
    found: dict[str, Any], codes: list[int], upload: bool, meanings: Mapping[int, str]
) -> dict[str, Any]:
    reference = {"$ref": f"#/components/schemas/{'UploadEnvelope' if upload else 'Envelope'}"}
    listed = "; ".join(f"{code}: {meanings[code]}" for code in codes)
    in_200 = [code for code in codes if code not in _NEVER_200]
    answer = {"allOf": [reference, {"type": "object", "properties": {"code": {"enum": in_200}}}]}
    ok = found.get("200", {})
    content = {
        media_type: body
        for media_type, body in ok.get("content", {}).items()
        if media_type != "application/json"
    }
    # The answer's examples stay beside the schema that replaces FastAPI's.
    shown = {
        name: value
        for name, value in ok.get("content", {}).get("application/json", {}).items()
        if name in ("example", "examples")
    }
    responses: dict[str, Any] = {
        "200": {
            "description": f"The envelope; by default every outcome comes with HTTP 200. Codes: {listed}.",
            "content": content | {"application/json": {"schema": answer} | shown},
        }
    }
    for code in codes:
        if code == 200 or code not in _STATUSES:
            continue
        when = (
            ""
            if code in _ALWAYS_REAL
            else " (this HTTP status with KINEMA_STRICT_HTTP_STATUS, else HTTP 200)"
        )
        responses[str(code)] = {
            "description": f"{meanings[code][:1].upper()}{meanings[code][1:]}{when}.",
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [reference, {"type": "object", "properties": {"code": {"enum": [code]}}}]
                    }
                }
            },
        }
    return responses
