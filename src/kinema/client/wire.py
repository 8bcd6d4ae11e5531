"""The protocol without the I/O: configuration, request bodies, reading answers, the event stream.

Both clients (blocking and asyncio) do their I/O and hand the bytes here, so that what an answer
means is decided in one place.
"""

from __future__ import annotations

import email.utils
import errno
import json
import mimetypes
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from kinema.client.errors import (
    KinemaAPIError,
    KinemaClientError,
    KinemaConnectionError,
    MissingAPIKeyError,
    RateLimitError,
    UnexpectedResponseError,
    error_for,
)
from kinema.client.models import DEFAULT_MODEL, StateChange, Task

BASE_URL_ENV: Final = "KINEMA_BASE_URL"
API_KEY_ENV: Final = "KINEMA_API_KEY"
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S: Final = 30.0
#: How often a rate-limited call is retried (after the server's ``Retry-After``) before giving up.
DEFAULT_RATE_LIMIT_RETRIES: Final = 3
#: The pause after a 429 that names none, and the longest pause the SDK takes for one.
DEFAULT_RETRY_AFTER_S: Final = 1.0
MAX_RETRY_AFTER_S: Final = 60.0
#: The server sends a keep-alive at least every 15 s; a quieter stream is given up for polling.
STREAM_READ_TIMEOUT_S: Final = 45.0

CREATE_TASK: Final = "/api/v1/jobs/createTask"
RECORD_INFO: Final = "/api/v1/jobs/recordInfo"
STREAM: Final = "/api/v1/jobs/stream"
LIST_TASKS: Final = "/api/v1/jobs/list"
CANCEL: Final = "/api/v1/jobs/cancel"
CREDIT: Final = "/api/v1/chat/credit"
DOWNLOAD_URL: Final = "/api/v1/common/download-url"
STREAM_UPLOAD: Final = "/api/file-stream-upload"
URL_UPLOAD: Final = "/api/file-url-upload"
DEFAULT_UPLOAD_PATH: Final = "images"

#: Seconds since ``wait`` began -> seconds until the next recordInfo poll.
PollSchedule = Callable[[float], float]


def published_backoff(elapsed_s: float) -> float:
    """Poll every 2 s for the first 30 s, every 5 s until 2 minutes, then every 10 s.

    The published guidance: every 2-3 s at first, less often for long tasks.
    """
    if elapsed_s < 30:
        return 2.0
    if elapsed_s < 120:
        return 5.0
    return 10.0


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the server is and how to authenticate."""

    base_url: str
    api_key: str

    @classmethod
    def resolve(cls, base_url: str | None, api_key: str | None) -> Connection:
        """The arguments, else ``KINEMA_BASE_URL`` and ``KINEMA_API_KEY``."""
        url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        key = api_key or os.environ.get(API_KEY_ENV)
        if not key:
            raise MissingAPIKeyError(f"no API key: pass api_key= or set {API_KEY_ENV}")
        return cls(url.rstrip("/"), key)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def create_task_body(
    *,
    model: str,
    prompt: str,
    image_url: str | None,
    duration: int | str | None,
    resolution: str | None,
    callback_url: str | None,
    extra_input: Mapping[str, Any],
) -> dict[str, Any]:
    """createTask's body; unset fields are left out, so the server's defaults apply."""
    task_input: dict[str, Any] = {"prompt": prompt}
    if image_url is not None:
        task_input["image_url"] = image_url
    if duration is not None:
        task_input["duration"] = str(duration)
    if resolution is not None:
        task_input["resolution"] = resolution
    task_input.update(extra_input)
    body: dict[str, Any] = {"model": model or DEFAULT_MODEL}
    if callback_url is not None:
        body["callBackUrl"] = callback_url
    body["input"] = task_input
    return body


UploadSource = str | os.PathLike[str] | bytes


def is_url(source: object) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    """A local file (or bytes) ready for ``file-stream-upload``."""

    file_name: str
    content: bytes
    content_type: str

    @classmethod
    def of(cls, source: str | os.PathLike[str] | bytes, file_name: str | None) -> MultipartUpload:
        if isinstance(source, bytes):
            name = file_name or secrets.token_hex(8) + _extension_of(source)
            return cls(name, source, mimetypes.guess_type(name)[0] or "application/octet-stream")
        path = Path(source)
        content = path.read_bytes()
        name = file_name or path.name
        return cls(name, content, mimetypes.guess_type(name)[0] or "application/octet-stream")

    def form(self, upload_path: str) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
        fields = {"uploadPath": upload_path, "fileName": self.file_name}
        return fields, {"file": (self.file_name, self.content, self.content_type)}


def _extension_of(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ""


def url_upload_body(url: str, upload_path: str, file_name: str | None) -> dict[str, str]:
    body = {"fileUrl": url, "uploadPath": upload_path}
    if file_name is not None:
        body["fileName"] = file_name
    return body


# Reading answers.


def envelope_data(response: httpx.Response) -> Any:
    """The ``data`` of a success answer (read first); any other answer raises its typed error."""
    body = _json_or_none(response.content)
    retry_after = retry_after_s(response.headers.get("Retry-After"))
    if isinstance(body, dict) and isinstance(body.get("code"), int) and not isinstance(body["code"], bool):
        code: int = body["code"]
        if code == 200:
            return body.get("data")
        message = str(body.get("msg") or "")
        raise error_for(
            code, message, http_status=response.status_code, data=body.get("data"), retry_after=retry_after
        )
    status = response.status_code
    if status >= 400:
        reason = response.reason_phrase or "error"
        raise error_for(status, reason, http_status=status, retry_after=retry_after)
    kind = response.headers.get("Content-Type", "no content type")
    raise UnexpectedResponseError(
        status, f"the answer is not a market-jobs envelope ({kind})", http_status=status
    )


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def retry_after_s(header: str | None) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def rate_limit_pause(error: RateLimitError) -> float:
    """How long to wait before retrying a rate-limited call."""
    wanted = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER_S
    return min(wanted, MAX_RETRY_AFTER_S)


def stream_is_missing(response: httpx.Response) -> bool:
    """For a stream request answered with something else than an event stream (read first):
    True when the server has no stream (never ask it again), False when it may have one later
    (rate limited: poll this time). Any other refusal (a bad key, say) raises its error."""
    try:
        envelope_data(response)
    except UnexpectedResponseError:
        return True
    except RateLimitError:
        return False
    except KinemaAPIError as error:
        if error.code == 404 or error.http_status == 404:
            return True
        raise
    return True


def is_event_stream(response: httpx.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return response.status_code == 200 and content_type.split(";", 1)[0].strip() == "text/event-stream"


def connection_error(error: httpx.TransportError, base_url: str) -> KinemaClientError:
    """A transport failure as one sentence that says where and why."""
    if isinstance(error, httpx.ConnectTimeout):
        return KinemaConnectionError(base_url, "timed out while connecting")
    if isinstance(error, httpx.TimeoutException):
        return KinemaConnectionError(base_url, "the server did not answer in time")
    if isinstance(error, httpx.RemoteProtocolError):
        return KinemaConnectionError(base_url, "the server closed the connection")
    return KinemaConnectionError(base_url, _reason(error))


def _reason(error: BaseException) -> str:
    for cause in _causes(error):
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(cause, ConnectionResetError):
            return "the connection was reset"
    text = str(error) or type(error).__name__
    if text.startswith("[Errno"):
        text = text.split("]", 1)[-1].strip()
    lowered = text[:1].lower() + text[1:]
    if "connection refused" in lowered.lower():
        return "connection refused"
    if "name or service not known" in lowered.lower() or "nodename nor servname" in lowered.lower():
        return "the host name does not resolve"
    return lowered


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


# The live status stream (Server-Sent Events).


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str


class EventStreamDecoder:
    """Turns the lines of a ``text/event-stream`` into events, as the HTML standard describes."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its end); answers an event when a blank line completes one."""
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = ServerSentEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def stream_update(event: ServerSentEvent) -> Task | StateChange | None:
    """What a stream event tells: the final record, a change of state, or nothing we know."""
    payload = _json_or_none(event.data.encode())
    if not isinstance(payload, dict):
        return None
    if event.event == "record":
        return Task.from_wire(payload)
    if event.event == "state":
        return StateChange(
            task_id=str(payload.get("taskId") or ""),
            state=Task.from_wire({"state": payload.get("state")}).state,
            progress=int(payload.get("progress") or 0),
        )
    return None


def download_timeout(timeout_s: float) -> httpx.Timeout:
    """Connect and wait as usual; reading a large file may pause longer between chunks."""
    return httpx.Timeout(timeout_s, read=max(timeout_s, 60.0))


def stream_timeout(timeout_s: float, remaining_s: float | None) -> httpx.Timeout:
    read = max(timeout_s, STREAM_READ_TIMEOUT_S)
    if remaining_s is not None:
        read = max(0.001, min(read, remaining_s))
    return httpx.Timeout(timeout_s, read=read)


def download_reason(status: int) -> str:
    return {
        403: "the link is not valid (its signature does not match)",
        404: "no such file",
        410: "the link has expired",
    }.get(status, "the server refused it")


def destination(dest: str | os.PathLike[str], task_id: str | None, url: str) -> Path:
    """Where a download goes: `dest`, or a file in it when `dest` is a folder."""
    path = Path(dest)
    if path.is_dir():
        name = f"{task_id}.mp4" if task_id else (Path(httpx.URL(url).path).name or "download.mp4")
        return path / name
    return path


class ChangeFilter:
    """Lets a task through only when its state or progress differs from the last one let through."""

    def __init__(self) -> None:
        self._last: tuple[str, int] | None = None

    def is_new(self, task: Task) -> bool:
        seen = (task.state, task.progress)
        if seen == self._last:
            return False
        self._last = seen
        return True


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, to name a server in a message."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode()}" if parsed.scheme else url
