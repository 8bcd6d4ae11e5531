"""`kinema generate`, `status`, `tasks` and the balance of `credits`: the command line as a client.

They talk to a server through the SDK (`kinema.client`), so they work against any server that
speaks the market-jobs API, here or elsewhere: `--base-url` and `--api-key` (or
``KINEMA_BASE_URL`` and ``KINEMA_API_KEY``) say which. Results go to stdout (a path, a balance,
a summary); progress and messages go to stderr; every failure is one line and exit status 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from kinema.catalog import default_catalog
from kinema.cli.app import app, console, warn_about_camera
from kinema.client import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    AuthenticationError,
    Client,
    FeatureDisabledError,
    GenerationFailedError,
    InsufficientCreditsError,
    KinemaAPIError,
    KinemaClientError,
    MaintenanceError,
    MissingAPIKeyError,
    NotFoundError,
    RateLimitError,
    ServerError,
    Task,
    TaskCanceledError,
    TaskState,
    ValidationError,
)
from kinema.client.errors import RECORD_NOT_FOUND
from kinema.client.wire import API_KEY_ENV, BASE_URL_ENV, is_url

#: Where `kinema generate` puts the images it uploads, in the account's own space.
UPLOAD_PATH = "kinema-cli"
CLIENT_PANEL = "Client (talks to a server through the API)"

BaseUrlOption = Annotated[
    str,
    typer.Option(
        "--base-url", envvar=BASE_URL_ENV, show_envvar=True, help="The server to talk to.", show_default=True
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar=API_KEY_ENV, show_envvar=True, show_default=False, help="Your API key."),
]

#: Results (a summary, a table) are printed here; the shared `console` (stderr) carries the rest.
results = Console(highlight=False)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def describe(error: KinemaClientError) -> str:
    """One line that says what went wrong, with the answer's code."""
    if isinstance(error, MissingAPIKeyError):
        return f"no API key: pass --api-key or set {API_KEY_ENV}"
    if not isinstance(error, KinemaAPIError):
        return str(error)
    code, message = error.code, error.message
    if isinstance(error, AuthenticationError):
        return f"the API key was refused ({code})"
    if isinstance(error, InsufficientCreditsError):
        return f"not enough credits for this task ({code}): {message}"
    if isinstance(error, TaskCanceledError):
        return f"the task was canceled ({error.fail_code})"
    if isinstance(error, GenerationFailedError):
        if error.task is not None:
            return f"the task failed ({error.fail_code}): {message}"
        return f"generation failed ({code}): {message}"
    if isinstance(error, NotFoundError):
        if message == RECORD_NOT_FOUND:
            return f"no such task ({code}: {message})"
        return f"the server does not offer this ({code}: {message})"
    if isinstance(error, ValidationError):
        return f"the request was refused ({code}): {message}"
    if isinstance(error, RateLimitError):
        after = f"; try again in {error.retry_after:g} s" if error.retry_after is not None else ""
        return f"too many requests ({code}){after}"
    if isinstance(error, MaintenanceError):
        return f"the service is under maintenance ({code}): {message}"
    if isinstance(error, FeatureDisabledError):
        return f"the server cannot run this model ({code}): {message}"
    if isinstance(error, ServerError):
        return f"the server failed ({code}): {message}"
    return f"{message} ({code})"


@contextmanager
def connected(base_url: str, api_key: str | None) -> Iterator[Client]:
    """A client for the command; any SDK error ends the command with its one line."""
    try:
        with Client(base_url, api_key) as client:
            yield client
    except KinemaClientError as error:
        _fail(describe(error))


@app.command(rich_help_panel=CLIENT_PANEL)
def generate(
    image: Annotated[str, typer.Argument(metavar="IMAGE_OR_URL", help="A local image, or an http(s) URL.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What to film; camera commands in [...].")],
    model: Annotated[str, typer.Option(help="The model.")] = DEFAULT_MODEL,
    duration: Annotated[
        str | None, typer.Option(help="Seconds of video, 6 or 10 (default: the model's).", show_default=False)
    ] = None,
    resolution: Annotated[
        str | None, typer.Option(help="768P or 1080P (default: the model's).", show_default=False)
    ] = None,
    callback_url: Annotated[
        str | None, typer.Option(help="A URL the server posts the result to when the task ends.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The MP4 to write (default: the image's name with .mp4, or TASK_ID.mp4 for a URL).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Give up waiting after this many seconds.", show_default=False)
    ] = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Make a video of IMAGE_OR_URL on the server, wait for it, download it; prints the path."""
    local = None if is_url(image) else Path(image)
    if local is not None and not local.is_file():
        _fail(f"no such file: {image}")
    warn_about_camera(prompt)  # before anything is spent
    with connected(base_url, api_key) as client:
        image_url = image
        if local is not None:
            try:
                image_url = client.upload_file(local, upload_path=UPLOAD_PATH).download_url
            except KinemaClientError:
                raise  # KinemaConnectionError is an OSError too; `connected` reports it
            except OSError as error:
                _fail(f"cannot read {image}: {error.strerror or error}")
        task_id = client.create_task(
            prompt=prompt,
            image_url=image_url,
            model=model,
            duration=duration,
            resolution=resolution,
            callback_url=callback_url,
        )
        console.print(f"task {task_id}", highlight=False)
        task = _wait_with_progress(client, task_id, timeout)
        target = output or Path(f"{local.stem if local is not None else task_id}.mp4")
        try:
            client.download(task, target)
        except KinemaClientError:
            raise
        except OSError as error:
            _fail(f"cannot write {target}: {error.strerror or error}")
    console.print(f"wrote {escape(str(target))}: {_about(task)}", highlight=False)
    print(target, flush=True)


def _wait_with_progress(client: Client, task_id: str, timeout: float | None) -> Task:
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        bar = progress.add_task("waiting", total=100)

        def show(task: Task) -> None:
            progress.update(bar, description=str(task.state), completed=task.progress)

        try:
            return client.wait(task_id, timeout=timeout, on_update=show)
        except KeyboardInterrupt:
            progress.stop()
            console.print(
                f"stopped waiting; the task goes on: kinema status {task_id}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=130) from None


def _about(task: Task) -> str:
    task_input = task.param.get("input")
    details = task_input if isinstance(task_input, dict) else {}
    parts = [f"task {task.task_id}"]
    if details.get("duration"):
        parts.append(f"{details['duration']} s")
    if details.get("resolution"):
        parts.append(str(details["resolution"]))
    parts.append(f"{task.credits_consumed} credits")
    if task.cost_time_ms:
        parts.append(f"made in {task.cost_time_ms / 1000:.1f} s")
    return ", ".join(parts)


@app.command(rich_help_panel=CLIENT_PANEL)
def status(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw recordInfo data.")] = False,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """A task's state, progress, result or failure."""
    with connected(base_url, api_key) as client:
        task = client.get_task(task_id)
    if as_json:
        print(json.dumps(task.raw, indent=2, ensure_ascii=False), flush=True)
        return
    rows = [
        ("task", task.task_id),
        ("model", task.model),
        ("state", f"{_state_word(task)} ({task.progress}%)"),
    ]
    if task.prompt:
        rows.append(("prompt", task.prompt))
    rows.append(("created", _when(task.create_time)))
    if task.complete_time:
        took = f" (generated in {task.cost_time_ms / 1000:.1f} s)" if task.cost_time_ms else ""
        rows.append(("finished", _when(task.complete_time) + took))
    rows.append(("credits", str(task.credits_consumed)))
    if task.state == TaskState.FAIL:
        rows.append(("failure", f"{task.fail_code}: {task.fail_msg}"))

    if task.video_url:
        rows.append(("video", task.video_url))
    # Plain lines, unwrapped: the links stay whole for copying, and the output greps well.
    print("\n".join(f"{label:<9} {value}" for label, value in rows), flush=True)


@app.command("tasks", rich_help_panel=CLIENT_PANEL)
def list_tasks(
    state: Annotated[TaskState | None, typer.Option(help="Only tasks in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the raw recordInfo data of each, as a JSON array.")
    ] = False,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Your recent tasks, newest first: state, credits, settings, and the prompt or the failure.

    In a terminal, two or three lines a task, to fit any width; piped, one line a task of
    tab-separated columns under a header, the same whatever the width.
    """
    with connected(base_url, api_key) as client:
        found = list(client.iter_tasks(state=state.value if state else None, limit=limit))
    if as_json:
        print(json.dumps([task.raw for task in found], indent=2, ensure_ascii=False), flush=True)
        return
    if not found:
        console.print("no tasks" + (f" in state {state.value}" if state else ""), highlight=False)
        return
    if results.is_terminal:
        _print_task_blocks(found)
    else:
        _print_task_columns(found)


#: The columns `kinema tasks` prints when piped, in order.
TASK_COLUMNS = (
    *("task_id", "state", "progress", "credits", "created_utc"),
    *("took_s", "model", "settings", "note"),
)


def _print_task_columns(found: list[Task]) -> None:
    lines = ["\t".join(TASK_COLUMNS)]
    for task in found:
        row = (
            task.task_id,
            _state_word(task),
            f"{task.progress}%",
            str(task.credits_consumed),
            _when(task.create_time, "%Y-%m-%dT%H:%M:%SZ"),
            f"{task.cost_time_ms / 1000:.1f}" if task.cost_time_ms else "",
            task.model,
            " ".join(_settings(task)),
            _note(task),
        )
        lines.append("\t".join(" ".join(value.split()) for value in row))  # no tab or newline inside
    print("\n".join(lines), flush=True)


def _print_task_blocks(found: list[Task]) -> None:
    """Each task as a line of facts, then its model and settings, then its prompt or failure."""
    width = max(40, results.width)
    header = f"{'TASK ID':<32}  {'STATE':<15} {'CREDITS':>7}  CREATED (UTC)"
    results.print(header[:width], style="bold", highlight=False, soft_wrap=True)
    colours = {"success": "green", "fail": "red", "canceled": "default"}
    for task in found:
        state = _state_word(task) + (f" {task.progress}%" if not task.is_finished else "")
        created = _when(task.create_time, "%Y-%m-%d %H:%M")
        facts = f"{state:<15} {task.credits_consumed:>7}  {created}"
        colour = colours.get(_state_word(task), "yellow")
        results.print(f"{task.task_id}  [{colour}]{escape(facts)}[/]", highlight=False, soft_wrap=True)
        took = [f"made in {task.cost_time_ms / 1000:.1f} s"] if task.cost_time_ms else []
        results.print(
            escape(_clip("  " + " · ".join([task.model, *_settings(task), *took]), width)),
            style="dim",
            highlight=False,
            soft_wrap=True,
        )
        note = _note(task)
        if note:
            style = "red" if task.state == TaskState.FAIL and task.fail_code != "499" else ""
            results.print(escape(_clip("  " + note, width)), style=style, highlight=False, soft_wrap=True)


def _state_word(task: Task) -> str:
    """The state, with a canceled task (failCode 499) called so rather than failed."""
    return "canceled" if task.state == TaskState.FAIL and task.fail_code == "499" else str(task.state)


def _settings(task: Task) -> list[str]:
    """Duration and resolution as asked, or the model's defaults where the request left them out."""
    task_input = task.param.get("input")
    given = task_input if isinstance(task_input, dict) else {}
    model = default_catalog().get(task.model)
    parts = []
    for name, unit in (("duration", " s"), ("resolution", "")):
        spec = model.field(name) if model is not None else None
        value = given.get(name, spec.default if spec is not None else None)
        if value is not None and value != "":
            parts.append(f"{value}{unit}")
    return parts


def _note(task: Task) -> str:
    """The failure's reason for a failed task, else the prompt."""
    if task.state == TaskState.FAIL:
        return f"{task.fail_code}: {task.fail_msg}" if task.fail_code else task.fail_msg
    return " ".join((task.prompt or "").split())


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\N{HORIZONTAL ELLIPSIS}"


def show_balance(base_url: str, api_key: str | None) -> None:
    """`kinema credits` without a subcommand: the balance, through the API.

    A terminal gets one sentence; a pipe gets the bare number, for scripts.
    """
    with connected(base_url, api_key) as client:
        balance = client.credits()
    if results.is_terminal:
        results.print(f"{balance} credits at {client.base_url}", highlight=False)
    else:
        print(balance, flush=True)


def _when(milliseconds: int | None, layout: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    if milliseconds is None:
        return ""
    return datetime.fromtimestamp(milliseconds / 1000, UTC).strftime(layout)
