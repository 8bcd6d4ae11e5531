"""`kinema serve`, `kinema worker` and `kinema migrate`: running the service.

The server's modules are imported by the commands that run it, so that the client commands
(`kinema status`, `kinema generate`...) start quickly.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import signal
import socket
import threading
from typing import TYPE_CHECKING, Annotated, Final

import typer

from kinema.cli.app import app, console, fail
from kinema.domain.clock import system_clock
from kinema.domain.errors import KinemaError
from kinema.settings import Settings, listening_url

if TYPE_CHECKING:
    from kinema.store.database import Database, Schema


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment, with the command's options on top."""
    try:
        return Settings(**{name: value for name, value in overrides.items() if value is not None})  # type: ignore[arg-type]
    except ValueError as error:
        fail(f"invalid settings: {error}")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


#: Query parameters whose values open something: a signed link's signature, or a key sent where
#: it should not be.
_SECRET_PARAMETER: Final = re.compile(r"([?&](?:signature|key|token|secret)=)[^&\s]*", re.IGNORECASE)


def redact_query(path: str) -> str:
    """A request's path and query as a log may show it: the values that open something left out."""
    return _SECRET_PARAMETER.sub(r"\1[redacted]", path)


class RedactedAccessLog(logging.Filter):
    """Keeps signed links out of uvicorn's access log, which shows each request's query."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn logs (client, method, path with query, HTTP version, status).
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, redact_query(str(path)), version, status)
        return True


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (safe to run again, and from several hosts at once)."""
    from kinema import runtime
    from kinema.store.database import Schema

    settings = load_settings()
    db = runtime.open_database(settings)
    if db.schema() is Schema.UNKNOWN:
        fail(schema_problem(db, Schema.UNKNOWN))
    db.migrate()
    console.print(f"database at revision {db.current_revision()}", highlight=False)


def require_schema(db: Database, *, create: bool = False) -> None:
    """Stop unless the schema is this Kinema's; with `create`, a new database gets it at once.

    An older schema is never upgraded behind the operator's back: replicas of the older version
    may still be running against it. `kinema migrate` does that, once, when they are ready.
    """
    from kinema.store.database import Schema

    schema = db.schema()
    if schema is Schema.EMPTY and create:
        db.migrate()  # concurrent first starts take turns; the second finds it done
    elif schema is not Schema.CURRENT:
        fail(schema_problem(db, schema))


def schema_problem(db: Database, schema: Schema) -> str:
    from kinema.store.database import Schema

    current, head = db.current_revision(), db.head_revision()
    if schema is Schema.EMPTY:
        return "the database has no schema yet: run `kinema migrate` first"
    if schema is Schema.UNKNOWN:
        return (
            f"the database's schema is at revision {current}, which this Kinema does not know: "
            "a newer Kinema has migrated it; run that version"
        )
    return (
        f"the database's schema is at revision {current}, older than this Kinema's ({head}): "
        "run `kinema migrate`, then start again"
    )


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on \\[default: KINEMA_HOST or 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on \\[default: KINEMA_PORT or 8000].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="In-process generation workers; 0 serves the API only.")
    ] = None,
    welcome: Annotated[
        bool, typer.Option("--welcome", help="Make a local key on first run and print a ready example.")
    ] = False,
) -> None:
    """Run the API (and its workers) on HOST:PORT."""
    import uvicorn

    from kinema import runtime
    from kinema.cli.welcome import print_welcome

    settings = load_settings(host=host, port=port, workers=workers)
    configure_logging(settings.log_level)
    from kinema.api.app import create_app

    # The port is taken before anything is printed: a busy port is one clear line, and the
    # address served (port 0 included) is known before any link is made.
    listener = bind_listener(settings.host, settings.port)
    served = listening_url(settings.host, listener.getsockname()[1])
    if not settings.public_url_is_set:
        settings = settings.model_copy(update={"public_url": served})
    elif settings.public_url != served:
        console.print(
            f"[yellow]warning:[/] result links start with KINEMA_PUBLIC_URL={settings.public_url}, "
            f"while this server listens on {served}: make sure that address reaches it, "
            "or unset KINEMA_PUBLIC_URL to use the address served",
            highlight=False,
            soft_wrap=True,
        )
    db = runtime.open_database(settings)
    require_schema(db, create=True)
    try:
        service = create_app(settings, settle_heap=True)
    except KinemaError as error:
        listener.close()
        fail(error.message)
    if welcome:
        print_welcome(settings, db, served)
    config = uvicorn.Config(
        service,
        log_level=settings.log_level.lower(),
        server_header=False,  # no banner that names the server and invites a lookup of its flaws
    )
    # uvicorn sets up its loggers as the configuration is made; the filter goes on after.
    logging.getLogger("uvicorn.access").addFilter(RedactedAccessLog())
    # Ctrl-C ends with KeyboardInterrupt once uvicorn has shut down in order; uvicorn.run hides it too.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listener])


def bind_listener(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port`, or a one-line failure that says what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        fail(f"cannot listen on {host}: {error.strerror}")
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            other = port + 1 if port else 8001
            fail(
                f"port {port} on {host} is already in use: stop what uses it, or choose another "
                f"port with --port or KINEMA_PORT (for example KINEMA_PORT={other} make run)"
            )
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    listener.set_inheritable(True)
    return listener


@app.command()
def worker(
    threads: Annotated[
        int | None, typer.Option(help="Generation threads \\[default: KINEMA_WORKERS].")
    ] = None,
    engine: Annotated[
        list[str] | None,
        typer.Option(
            "--engine",
            metavar="NAME",
            help="An engine to run, again for more \\[default: KINEMA_WORKER_ENGINES, else every "
            "engine a model is routed to].",
        ),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL,...",
            help="The models to take, comma-separated \\[default: KINEMA_WORKER_MODELS, else every "
            "model of its engines].",
        ),
    ] = None,
) -> None:
    """Run workers (and a callback deliverer) alone, against the same database as the API.

    It takes only the tasks of the models it serves. On SIGTERM it stops claiming, lets running
    tasks finish for KINEMA_DRAIN_SECONDS and hands back the rest.
    """
    from kinema import runtime

    chosen = None if models is None else [name.strip() for name in models.split(",") if name.strip()]
    settings = load_settings(workers=threads, worker_engines=engine or None, worker_models=chosen)
    configure_logging(settings.log_level)
    db = runtime.open_database(settings)
    require_schema(db)
    policy = runtime.fetch_policy(settings)
    deliverer = runtime.build_deliverer(settings, db, clock=system_clock, policy=policy)
    try:
        running = runtime.build_worker(
            settings, db, clock=system_clock, on_finished=deliverer.wake, policy=policy
        )
    except KinemaError as error:
        fail(error.message)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    deliverer.start()
    running.start()
    stop.wait()
    running.stop()
    deliverer.stop()
