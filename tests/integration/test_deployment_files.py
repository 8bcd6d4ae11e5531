"""The deployment files (deploy/, the Dockerfile) say what Kinema can run, and say it alike.

Neither Docker nor a cluster runs here, so the files are checked against the code they start:
every command line parses with the `kinema` command itself, every KINEMA_* variable is a setting
and its value parses, each worker's engines serve a model under the settings its role has, the
Kubernetes manifests validate against the API's schemas (strict: no unknown field), and the
compose file and the manifests run the same roles with the same settings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import kubernetes_validate
import pytest
import typer
import yaml
from yamllint import config as yamllint_config
from yamllint import linter

from kinema import runtime
from kinema.api.routes.health import router as health_router
from kinema.cli import app
from kinema.domain.clock import system_clock
from kinema.domain.errors import KinemaError
from kinema.settings import Settings

ROOT: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = ROOT / "deploy"
COMPOSE: Final = DEPLOY / "compose.yaml"
KUBERNETES: Final = DEPLOY / "kubernetes"
GUIDE: Final = ROOT / "docs" / "deployment.md"
#: The Kubernetes version whose schemas the manifests are checked against.
KUBERNETES_VERSION: Final = "1.37.0"
#: The compose file's own variables for each profile, as its header and the guide tell them.
PROFILE_VARIABLES: Final[Mapping[str, Mapping[str, str]]] = {
    "": {},
    "gpu": {"IMAGE_EXTRAS": "diffusers", "PRO_MODEL_ENGINE": "diffusers"},
    "minimax": {"HAILUO_02_ENGINE": "minimax", "MINIMAX_API_KEY": "..."},
}
#: Settings whose values belong to the place the service runs in: the same names in both files,
#: other values. Every other value is the same in compose and in Kubernetes.
PER_PLACE: Final = frozenset(
    {
        "KINEMA_DATABASE_URL",
        "KINEMA_S3_ENDPOINT_URL",
        "KINEMA_S3_ACCESS_KEY_ID",
        "KINEMA_S3_SECRET_ACCESS_KEY",
        # moto inside compose's network is reachable by the API only; a real bucket by clients.
        "KINEMA_S3_LINKS",
        "KINEMA_PUBLIC_URL",
        "KINEMA_RATE_LIMIT_STORAGE_URL",
        # compose routes to the GPU and MiniMax only with their profiles (PROFILE_VARIABLES).
        "KINEMA_MODEL_ENGINES",
        "KINEMA_ADMIN_TOKEN",
        "KINEMA_MINIMAX_API_KEY",
    }
)
ROLES: Final = ("migrate", "api", "worker-cpu", "worker-gpu", "worker-minimax")


@dataclass(frozen=True)
class Role:
    """One kind of Kinema process as a deployment file runs it."""

    name: str
    args: tuple[str, ...]  #: after the image's entrypoint, `kinema`
    env: Mapping[str, str]  #: every KINEMA_* variable it gets, with its value
    grace_s: float | None  #: how long it has between SIGTERM and SIGKILL
    extras: str  #: the pip extras its image is built with


# The compose file.

_VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """`text` with ``${NAME}`` and ``${NAME:-default}`` replaced, as docker compose does."""
    return _VARIABLE.sub(lambda found: variables.get(found[1], found[2] or ""), text)


def compose_file(profile: str = "") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE.read_text(), PROFILE_VARIABLES[profile]))
    return loaded


def seconds(duration: str) -> float:
    found = re.fullmatch(r"(\d+)s", duration)
    assert found, f"write durations in seconds, like 30s: {duration!r}"
    return float(found[1])


def compose_roles(profile: str | None = None) -> dict[str, Role]:
    """The services that run the Kinema image's `kinema` entrypoint, by name: those `profile`
    starts, with its variables; None: every service, with the defaults."""
    roles = {}
    for name, service in compose_file(profile or "")["services"].items():
        if "build" not in service or "entrypoint" in service:
            continue
        if profile is not None and service.get("profiles", [profile]) != [profile]:
            continue
        env = {key: str(value) for key, value in service.get("environment", {}).items()}
        grace = service.get("stop_grace_period")
        grace_s = None if grace is None else seconds(grace)
        roles[name] = Role(name, tuple(service["command"]), env, grace_s, service["build"]["args"]["EXTRAS"])
    return roles


# The Kubernetes manifests.


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                yield path, document


def kubernetes_roles() -> dict[str, Role]:
    """The workloads (Deployments, the Job), by their component label."""
    documents = [document for _, document in manifests()]
    config_maps = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in documents if d["kind"] == "Secret"}
    roles = {}
    for document in documents:
        if document["kind"] not in ("Deployment", "Job"):
            continue
        pod = document["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env |= config_maps[source["configMapRef"]["name"]]
            else:
                env |= secrets[source["secretRef"]["name"]]
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            else:
                reference = variable["valueFrom"]["secretKeyRef"]
                env[variable["name"]] = secrets[reference["name"]][reference["key"]]
        component = document["metadata"]["labels"]["app.kubernetes.io/component"]
        grace = pod.get("terminationGracePeriodSeconds")
        # The image built with --build-arg EXTRAS=diffusers is tagged so.
        extras = "diffusers" if container["image"].endswith("-diffusers") else ""
        roles[component] = Role(
            component, tuple(container["args"]), env, None if grace is None else float(grace), extras
        )
    return roles


# What a role's process would do with its command line and settings.


def parsed_command(args: tuple[str, ...]) -> Any:
    """The context of the `kinema` command line `args`, parsed by the command itself (nothing
    runs): an unknown command or option, or a bad value, fails the test with click's message."""
    group = typer.main.get_command(app)
    name, *rest = args
    with group.context_class(group, info_name="kinema") as parent:
        command = group.get_command(parent, name)
        assert command is not None, f"kinema has no command {name!r}"
        try:
            return command.make_context(name, list(rest), parent=parent)
        except Exception as error:  # click's UsageError, from the copy of click that Typer carries
            format_message = getattr(error, "format_message", None)
            message = format_message() if callable(format_message) else str(error)
            pytest.fail(f"`kinema {' '.join(args)}`: {message}")


def role_settings(role: Role, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the role's process reads: its environment, its command's options on top."""
    for name in list(os.environ):
        if name.startswith("KINEMA_"):
            monkeypatch.delenv(name)
    for name, value in role.env.items():
        monkeypatch.setenv(name, value)
    options = parsed_command(role.args).params
    overrides: dict[str, Any] = {}
    if role.args[0] == "worker":
        if options["engine"]:
            overrides["worker_engines"] = options["engine"]
        if options["threads"] is not None:
            overrides["workers"] = options["threads"]
    elif role.args[0] == "serve" and options["workers"] is not None:
        overrides["workers"] = options["workers"]
    try:
        return Settings(**overrides)
    except ValueError as error:
        pytest.fail(f"{role.name}: the settings do not parse: {error}")


def loaded_engines(role: Role, settings: Settings) -> tuple[str, ...]:
    """The engines the role's process imports: the API every routed one, a worker its own."""
    if role.args[0] == "serve":
        return tuple(runtime.engine_router(settings).names)
    if role.args[0] == "worker":
        return runtime.worker_scope(settings).engines
    return ()


def every_role() -> Iterator[tuple[str, Role]]:
    for profile in PROFILE_VARIABLES:
        for role in compose_roles(profile).values():
            yield f"compose{'/' + profile if profile else ''}", role
    for role in kubernetes_roles().values():
        yield "kubernetes", role


# The tests.


def test_both_files_run_the_same_roles() -> None:
    assert set(compose_roles()) == set(kubernetes_roles()) == set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_a_role_has_the_same_command_and_settings_in_both_files(role: str) -> None:
    composed, kubernetes = compose_roles()[role], kubernetes_roles()[role]
    assert composed.args == kubernetes.args
    assert set(composed.env) == set(kubernetes.env), "the same KINEMA_* names in both files"
    differ = {
        name for name in composed.env if name not in PER_PLACE and composed.env[name] != kubernetes.env[name]
    }
    assert differ == set(), "values that should be the same everywhere"
    assert composed.grace_s == kubernetes.grace_s


def test_the_settings_every_process_must_share_are_the_same_for_every_role() -> None:
    shared = ("KINEMA_DATABASE_URL", "KINEMA_PUBLIC_URL", "KINEMA_ENGINE", "KINEMA_MODEL_ENGINES")
    for place, roles in (("compose", compose_roles()), ("kubernetes", kubernetes_roles())):
        for name in (
            *shared,
            *(n for n in roles["api"].env if n.startswith(("KINEMA_S3_", "KINEMA_STORAGE"))),
        ):
            values = {role.name: role.env.get(name) for role in roles.values()}
            assert len(set(values.values())) == 1, f"{place}: {name} differs between roles: {values}"
        assert all("KINEMA_SECRET_KEY" not in role.env for role in roles.values()), (
            "links are signed with the database's secret: KINEMA_SECRET_KEY set for some roles only "
            "would make links that other roles refuse"
        )


def test_every_command_line_parses_and_every_setting_is_real(monkeypatch: pytest.MonkeyPatch) -> None:
    known = {f"KINEMA_{name.upper()}" for name in Settings.model_fields}
    for place, role in every_role():
        unknown = set(role.env) - known
        assert unknown == set(), f"{place} {role.name}: not settings: {sorted(unknown)}"
        with monkeypatch.context() as patch:
            role_settings(role, patch)


def test_each_worker_serves_models_and_each_image_has_the_engines_it_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for place, role in every_role():
        with monkeypatch.context() as patch:
            settings = role_settings(role, patch)
            # A worker whose engine serves no model under these settings refuses to start.
            engines = loaded_engines(role, settings)
            for engine in engines:
                try:  # as the process builds each engine it loads (the minimax one needs its key)
                    runtime.engine_config(settings, engine, None, system_clock)
                except KinemaError as error:
                    pytest.fail(f"{place} {role.name} would not start: {error.message}")
        if "diffusers" in engines:
            assert role.extras == "diffusers", (
                f"{place} {role.name} loads the diffusers engine: its image needs it"
            )
        if role.args[0] == "worker":
            assert role.args[role.args.index("--engine") + 1] in settings.worker_engines


def test_workers_drain_within_the_time_they_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for place, role in every_role():
        if role.args[0] != "worker":
            continue
        with monkeypatch.context() as patch:
            settings = role_settings(role, patch)
        # After the drain, an engine in a process of its own has its stop grace before a kill.
        stopping = settings.drain_seconds
        if set(settings.worker_engines) & set(settings.engine_process):
            stopping += settings.engine_stop_grace_seconds
        assert role.grace_s is not None, f"{place} {role.name}: say how long it has to stop"
        assert role.grace_s >= stopping + 10, (
            f"{place} {role.name}: {role.grace_s} s to stop, needs {stopping} + 10"
        )


def test_compose_starts_nothing_before_the_schema_is_migrated() -> None:
    services = compose_file()["services"]
    for name, role in compose_roles().items():
        if role.args[0] in ("serve", "worker"):
            assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_scales_out_as_the_chaos_run_does() -> None:
    """bench/chaos.py runs what this file runs: two API processes and four CPU workers."""
    services = compose_file()["services"]
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["worker-cpu"]["deploy"]["replicas"] == 4
    assert {"postgres", "redis", "s3", "bucket", "proxy"} <= set(services)
    assert compose_roles()["api"].args == ("serve", "--workers", "0")
    assert "KINEMA_RATE_LIMIT_STORAGE_URL" in compose_roles()["api"].env
    assert compose_roles()["api"].env["KINEMA_STORAGE"] == "s3"


def test_compose_keeps_the_gpu_and_minimax_workers_behind_profiles() -> None:
    services = compose_file()["services"]
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert services["worker-minimax"]["profiles"] == ["minimax"]
    (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    # The header and the guide tell the variables each profile needs.
    for variables in PROFILE_VARIABLES.values():
        for name, value in variables.items():
            assert f"{name}={value}" in COMPOSE.read_text()
            assert f"{name}={value}" in GUIDE.read_text()


def test_the_load_balancer_reaches_the_port_the_api_listens_on() -> None:
    port = compose_roles()["api"].env["KINEMA_PORT"]
    assert re.search(rf"server api:{port}\b", (DEPLOY / "nginx.conf").read_text())
    (container,) = next(
        d for _, d in manifests() if d["kind"] == "Deployment" and d["metadata"]["name"] == "kinema-api"
    )["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == int(kubernetes_roles()["api"].env["KINEMA_PORT"])


def test_the_manifests_validate_against_the_kubernetes_schemas() -> None:
    count = 0
    for path, document in manifests():
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name}: {document['kind']} {document['metadata']['name']}: {error.message}")
        count += 1
    assert count >= 10


def test_the_validator_refuses_an_unknown_field() -> None:
    """Strict validation is what catches a misspelt field: make sure it is on."""
    _, api = next(
        (path, d)
        for path, d in manifests()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "kinema-api"
    )
    api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)


def test_the_probes_are_the_service_s_own_routes() -> None:
    routes = {route.path for route in health_router.routes}
    workloads = [d for _, d in manifests() if d["kind"] == "Deployment"]
    api = next(d for d in workloads if d["metadata"]["labels"]["app.kubernetes.io/component"] == "api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"/healthz", "/readyz"} <= routes
    compose_check = " ".join(compose_file()["services"]["api"]["healthcheck"]["test"])
    assert "/healthz" in compose_check
    for workload in workloads:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert "requests" in container["resources"], f"{workload['metadata']['name']}: resource requests"
    gpu = next(d for d in workloads if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker-gpu")
    (container,) = gpu["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_the_yaml_is_clean() -> None:
    rules = yamllint_config.YamlLintConfig(
        "extends: default\n"
        "rules:\n"
        "  line-length: {max: 120}\n"
        "  document-start: disable\n"
        "  truthy: {check-keys: false}\n"
    )
    problems = [
        f"{path.relative_to(ROOT)}:{problem.line}: {problem.message}"
        for path in sorted(DEPLOY.rglob("*.yaml"))
        for problem in linter.run(path.read_text(), rules)
    ]
    assert problems == []


def test_the_dockerfile_installs_the_locked_project_as_a_user_with_kinema_as_entrypoint() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#")
    assert "\nFROM python:3.11-slim\n" in dockerfile
    assert '\nENTRYPOINT ["kinema"]\n' in dockerfile
    assert "--constraint requirements.lock" in dockerfile
    users = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert users
    assert users[-1] != "root"
    # The matte model is the one `make install` adds.
    (makefile_model,) = re.findall(r"^MATTE_MODEL := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert f"ARG MATTE_MODEL={makefile_model}\n" in dockerfile
    known = {f"KINEMA_{name.upper()}" for name in Settings.model_fields}
    assert set(re.findall(r"\b(KINEMA_[A-Z0-9_]+)=", dockerfile)) <= known
    # Nothing the image copies is left out of the build context.
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    copied = {
        source
        for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE)
        for source in line.split()[:-1]
    }
    assert copied
    assert copied.isdisjoint(ignored)
    assert all((ROOT / source).exists() for source in copied)


def test_the_guide_names_every_role_and_the_capacity_figures_sources() -> None:
    guide = GUIDE.read_text()
    for role in ROLES:
        assert f"`{role}`" in guide
    for command in ("kinema migrate", "kinema serve --workers 0", "kinema worker --engine motion"):
        assert command in guide
    assert "docs/benchmarks.md" in guide
    assert "transaction mode" in guide  # the pooler that would break LISTEN is warned of
