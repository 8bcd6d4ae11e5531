"""The API fuzzed by schemathesis, in-process: the seed's published spec and the service's own.

Against the seed's spec (``../shared/spec``) the one rule is no server error: whatever the
published contract lets a client send, Kinema answers without a 5xx. Against ``/openapi.json``
every check schemathesis has runs on every route: the service documents what it answers and what
it accepts (two checks read with what no schema can say, see `DEPENDS_ON_STATE` and
`rejects_invalid_data`). Both go through the ASGI app itself, with a funded key; nothing leaves
the process (see `no_network`).
"""

from __future__ import annotations

import base64
import io
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis import Case, CheckContext, CheckFunction, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transforms import to_wire_text
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi import checks
from schemathesis.specs.openapi.formats import unregister_string_format
from schemathesis.transport.serialization import Binary
from sqlalchemy.engine import make_url
from tests.conftest import MakeSettings
from tests.support.databases import postgres_url
from tests.support.engines import InstantEngine

from kinema.accounts import keys
from kinema.api.app import create_app
from kinema.api.envelope import RECORD_NOT_FOUND
from kinema.api.routes.jobs import list_cursor
from kinema.domain.clock import system_clock
from kinema.store.database import Database

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The seed's spec lives beside the project (CI has it at ../shared); a user's clone may not.
SEED_SPEC = REPO_ROOT.parent / "shared" / "spec" / "hailuo-2-3-image-to-video-standard.openapi.yaml"

#: Examples per operation and generation mode: enough to reach every documented field, few
#: enough that both runs, on both databases, take about a minute on two cores.
EXAMPLES = 30
#: One operation only, so it can afford more.
SEED_EXAMPLES = 150

ADMIN_TOKEN = "an-admin-token-for-the-fuzzer"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

#: Answers that positive data may get although the document allows the request: what no schema can
#: say, because it depends on what exists, not on what is sent. A made-up taskId names no task,
#: and the published API answers that 422 "recordInfo is null" (where HTTP would say 404, which
#: schemathesis accepts); a link names a file of the caller's only if this server signed it for
#: them (the document's example is not one); an Idempotency-Key drawn twice comes with another
#: body the second time (HTTP would say 409); a made-up fileUrl serves no image, since nothing
#: leaves the process here.
DEPENDS_ON_STATE: dict[str, tuple[str, ...]] = {
    "POST /api/v1/jobs/createTask": ("Idempotency-Key was already used with a different request body",),
    **dict.fromkeys(
        (
            "GET /api/v1/jobs/recordInfo",
            "POST /api/v1/jobs/cancel",
            "GET /api/v1/jobs/stream",
            "GET /api/v1/jobs/callbacks",
            "POST /api/v1/jobs/callbacks/redeliver",
        ),
        (RECORD_NOT_FOUND,),
    ),
    "POST /api/v1/common/download-url": ("url must be a file link of this server that belongs to you",),
    **dict.fromkeys(
        (f"POST {prefix}/api/file-url-upload" for prefix in ("", "/file-upload")),
        ("fileUrl could not be reached: ", "fileUrl points to a private or reserved address"),
    ),
}


def accepts_valid_data(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis's positive_data_acceptance, but for the answers of `DEPENDS_ON_STATE`."""
    refusals = DEPENDS_ON_STATE.get(case.operation.label, ())
    if refusals and response.status_code == 422 and str(response.json().get("msg")).startswith(refusals):
        return None
    return checks.positive_data_acceptance(ctx, response, case)


def rejects_invalid_data(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis's negative_data_rejection, with a multipart body judged as the text it is sent as.

    A part of a multipart body is text: where schemathesis makes a text field an object or a
    number, it sends that value's JSON, which may well be valid text (``{"": [true]}`` is a
    folder name). It already judges query parameters this way, not yet the parts of a form.
    """
    if case.media_type == "multipart/form-data" and isinstance(case.body, dict):
        operation = case.operation
        document = operation.schema.raw_schema["paths"][operation.path][operation.method.lower()]
        form = document["requestBody"]["content"]["multipart/form-data"]["schema"]
        sent = {name: _part_text(value) for name, value in case.body.items() if _part_text(value) is not None}
        if jsonschema_rs.validator_for(form).is_valid(sent):
            return None
    return checks.negative_data_rejection(ctx, response, case)


def _part_text(value: object) -> str | None:
    """What the server reads of a form field: its last part's text; None when no part is sent."""
    if isinstance(value, list):
        return _part_text(value[-1]) if value else None
    if isinstance(value, Binary | bytes):
        return ""  # a file: its content is not text the schema judges
    return str(value) if isinstance(value, str) else to_wire_text(value)


#: How invalid input may be refused: schemathesis's own list, and 413 for a body over its
#: route's cap (a fuzzed body can be large; the service refuses it before parsing it).
REFUSED_WITH = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
CONFIG = {"checks": {"negative_data_rejection": {"expected-statuses": REFUSED_WITH}}}


def spared_checks(label: str) -> list[CheckFunction]:
    """The checks of /openapi.json that a route is spared (those above stand in for two)."""
    excluded: list[CheckFunction] = [checks.positive_data_acceptance, checks.negative_data_rejection]
    if label == "GET /readyz":
        # Not a fault: an app with no worker is not ready, and says so with a 503 (its purpose).
        excluded.append(not_a_server_error)
    return excluded


def image(kind: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 120, 40)).save(out, kind)
    return out.getvalue()


#: An image of each type the uploads take, by media type.
IMAGES = {f"image/{kind.lower()}": image(kind) for kind in ("JPEG", "PNG", "WEBP")}


@contextmanager
def formats_of(served: Served, schema: BaseSchema) -> Iterator[None]:
    """The values of the document's own formats and file types, taught to schemathesis.

    An upload's file is an image of one of the types its part names; ``image-base64`` is such an
    image in base64 (or a data URL); ``list-cursor`` a nextCursor the list could answer (a time
    and a task id); ``file-link`` a link this server gave the caller, here an upload's.
    """
    upload = schema["/api/file-base64-upload"]["POST"]
    case = upload.Case(
        body={"base64Data": base64.b64encode(IMAGES["image/png"]).decode(), "uploadPath": "own"},
        media_type="application/json",
    )
    link = case.call(headers=served.headers_for(upload)).json()["data"]["downloadUrl"]
    for media_type, data in IMAGES.items():
        schemathesis.openapi.media_type(media_type, st.just(data))
    encoded = [base64.b64encode(data).decode() for data in IMAGES.values()]
    formats = {
        "image-base64": st.sampled_from(
            [*encoded, *(f"data:{kind};base64,{text}" for kind, text in zip(IMAGES, encoded, strict=True))]
        ),
        "list-cursor": st.builds(
            list_cursor,
            st.integers(0, 2**63 - 1),
            st.text("0123456789abcdef", min_size=32, max_size=32),
        ),
        "file-link": st.just(link),
    }
    for name, strategy in formats.items():
        schemathesis.openapi.format(name, strategy)
    try:
        yield
    finally:
        for name in formats:
            unregister_string_format(name)


@dataclass
class Served:
    app: Any
    key: str

    def headers_for(self, operation: APIOperation) -> dict[str, str]:
        token = ADMIN_TOKEN if operation.path.startswith("/api/v1/admin") else self.key
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names resolve and connections go to loopback only (and the test database), nowhere else.

    Fuzzed image and callback URLs then fail as an unreachable host does, and the service's
    own address rules (private addresses refused) keep it off loopback.
    """
    resolve, connect = socket.getaddrinfo, socket.create_connection
    database = postgres_url()
    names = LOOPBACK | ({make_url(database).host} if database else set())

    def loopback_names(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and host not in names:
            raise socket.gaierror(socket.EAI_NONAME, f"{host!r}: no network in the fuzz tests")
        return resolve(host, *args, **kwargs)

    def loopback_connections(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] not in LOOPBACK:
            raise ConnectionRefusedError(f"{address[0]}: no network in the fuzz tests")
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_names)
    monkeypatch.setattr(socket, "create_connection", loopback_connections)


def serve(make_settings: MakeSettings, **overrides: Any) -> Iterator[Served]:
    config = make_settings(allow_private_urls=False, admin_token=ADMIN_TOKEN, **overrides)
    app = create_app(config, engine=InstantEngine())
    db = Database(config.database_url)
    with db.write() as connection:
        funded = keys.open_account(connection, "fuzzer", 10**9, system_clock())
    db.dispose()
    try:
        yield Served(app, funded.secret)
    finally:
        # schemathesis starts the app's lifespan on first use and keeps it for the process.
        shutdown_lifespans()


@pytest.fixture
def lenient(make_settings: MakeSettings, no_network: None) -> Iterator[Served]:
    """The service as deployed by default: logical outcomes as HTTP 200 with ``code``."""
    yield from serve(make_settings)


@pytest.fixture
def strict(make_settings: MakeSettings, no_network: None) -> Iterator[Served]:
    """Strict HTTP statuses, the mode in which the HTTP status says what the envelope does."""
    yield from serve(make_settings, strict_http_status=True)


def can_negate(operation: APIOperation) -> bool:
    """Whether invalid input can be made: headers alone give schemathesis nothing to break."""
    return bool(operation.body or operation.query or operation.path_parameters)


def fuzz(schema: BaseSchema, examples: int, call: Callable[[APIOperation, Case], None]) -> dict[str, str]:
    """Run every operation in both modes; the failures by operation and mode, in words."""
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not can_negate(operation):
                continue
            try:
                fuzz_operation(operation, mode, examples, call)
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
                # Nothing in this operation can be made invalid (a string of any length, say).
            except (AssertionError, FailureGroup) as failure:
                failures[f"{operation.label} ({mode.value})"] = str(failure)
    return failures


def fuzz_operation(
    operation: APIOperation, mode: GenerationMode, examples: int, call: Callable[[APIOperation, Case], None]
) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same cases in every run: a failure in CI reproduces anywhere
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no explain phase: it costs minutes
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )
    def run(case: Case) -> None:
        call(operation, case)

    run()


def report(failures: dict[str, str]) -> str:
    return "\n\n".join(f"=== {label}\n{text}" for label, text in failures.items())


@pytest.mark.skipif(not SEED_SPEC.is_file(), reason=f"the seed's spec is not at {SEED_SPEC}")
def test_whatever_the_seed_spec_allows_is_answered_without_a_server_error(lenient: Served) -> None:
    schema = schemathesis.openapi.from_path(SEED_SPEC)
    schema.app = lenient.app

    def call(operation: APIOperation, case: Case) -> None:
        case.call_and_validate(
            base_url="http://testserver", headers=lenient.headers_for(operation), checks=[not_a_server_error]
        )

    failures = fuzz(schema, SEED_EXAMPLES, call)
    assert not failures, report(failures)


def test_the_service_answers_as_its_openapi_document_says(strict: Served) -> None:
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", strict.app, config=schemathesis.Config.from_dict(CONFIG)
    )

    def call(operation: APIOperation, case: Case) -> None:
        case.call_and_validate(
            headers=strict.headers_for(operation),
            excluded_checks=spared_checks(operation.label),
            additional_checks=[accepts_valid_data, rejects_invalid_data],
        )

    with formats_of(strict, schema):
        failures = fuzz(schema, EXAMPLES, call)
    assert not failures, report(failures)


def test_the_fuzzed_service_reaches_no_network(strict: Served) -> None:
    """What the fuzzers send is answered without a byte leaving: a name does not resolve, an
    address refuses the connection."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", strict.app)
    upload = schema["/api/file-url-upload"]["POST"]
    for url, refusal in (
        ("https://example.com/cat.png", "the host example.com was not found"),
        ("http://93.184.215.14/cat.png", "could not be reached: the connection was refused"),
    ):
        case = upload.Case(body={"fileUrl": url, "uploadPath": "x"}, media_type="application/json")
        answer = case.call(headers=strict.headers_for(upload)).json()
        assert answer["code"] == 422, answer
        assert refusal in answer["msg"]
