"""The asyncio client, and the one source of both clients.

The blocking :class:`kinema.client.Client` in ``sync_client.py`` is made from this module by
``scripts/make_sync_client.py``: it drops ``async`` and ``await``, turns ``AsyncX`` names and
httpx's ``a``-prefixed methods into their blocking twins, and reads two markers: a line ending in
``# async only`` is left out, and ``code  # sync: other`` becomes ``other``; ruff then drops the
imports left unused. A unit test fails while the committed file differs from what the script
makes: edit this file, then run ``.venv/bin/python scripts/make_sync_client.py``.

Why generated and not a sans-I/O core: what the protocol means (request bodies, reading answers,
the error map, the event-stream decoder, the poll schedule, retry pauses, the task's fields) is
already pure, in ``wire`` and ``models``. What is left here is the I/O and the order it happens
in: the rate-limit retry loop, following the stream, polling, downloading. A sans-I/O core would
put that order behind a protocol of effects and still need every public method, its signature
and its docstring, written twice; generating keeps each of them once, and the two clients cannot
drift apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from kinema.client import wire
from kinema.client.errors import (
    DownloadError,
    GenerationFailedError,
    KinemaClientError,
    RateLimitError,
    WaitTimeoutError,
)
from kinema.client.models import DEFAULT_MODEL, StateChange, Task, TaskPage, UploadedFile


class AsyncClient:
    """An asyncio client of a Kinema server (or any server that speaks the market-jobs API).

    ``base_url`` and ``api_key`` default to ``KINEMA_BASE_URL`` (else ``http://127.0.0.1:8000``)
    and ``KINEMA_API_KEY``. ``transport`` replaces httpx's network transport (tests pass
    ``httpx.MockTransport`` or ``httpx.ASGITransport``). ``poll_schedule``, ``sleep`` and ``clock``
    decide how :meth:`wait` polls when the server has no live stream; tests inject them (``sleep``
    as a coroutine function).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = wire.DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limit_retries: int = wire.DEFAULT_RATE_LIMIT_RETRIES,
        use_stream: bool = True,
        poll_schedule: wire.PollSchedule = wire.published_backoff,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = wire.Connection.resolve(base_url, api_key)
        self._timeout = timeout
        self._rate_limit_retries = rate_limit_retries
        self._use_stream = use_stream
        self._stream_available = True
        self._poll_schedule = poll_schedule
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=self._connection.base_url, timeout=timeout, transport=transport
        )

    @property
    def base_url(self) -> str:
        return self._connection.base_url

    async def close(self) -> None:
        await self._http.aclose()

    aclose = close  # async only

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    # Tasks.

    async def create_task(
        self,
        *,
        prompt: str,
        image_url: str | None = None,
        model: str = DEFAULT_MODEL,
        duration: int | str | None = None,
        resolution: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        **extra_input: Any,
    ) -> str:
        """Create a task and answer its id. Unset inputs take the model's defaults; other input
        fields of the model (``end_image_url``, ``prompt_optimizer``, ...) go in `extra_input`.
        `idempotency_key` makes retries safe where the server supports it (a Kinema extension).
        """
        body = wire.create_task_body(
            model=model,
            prompt=prompt,
            image_url=image_url,
            duration=duration,
            resolution=resolution,
            callback_url=callback_url,
            extra_input=extra_input,
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        data = await self._call("POST", wire.CREATE_TASK, json=body, headers=headers)
        return str(data["taskId"])

    async def get_task(self, task_id: str) -> Task:
        """The task as recordInfo answers it; :class:`NotFoundError` for an unknown id."""
        return Task.from_wire(await self._call("GET", wire.RECORD_INFO, params={"taskId": task_id}))

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        on_update: Callable[[Task], object] | None = None,
        raise_on_failure: bool = True,
        stream: bool | None = None,
    ) -> Task:
        """Wait until the task ends and answer it.

        Follows the server's live stream where it has one, else polls recordInfo on the poll
        schedule. `on_update` gets the task each time its state or progress changes. A task that
        ends in ``fail`` raises :class:`GenerationFailedError` unless `raise_on_failure` is false;
        past `timeout` seconds, :class:`WaitTimeoutError`. `stream=False` forces polling.
        """
        started = self._clock()
        deadline = None if timeout is None else started + timeout
        changes = wire.ChangeFilter()

        async def seen(task: Task) -> Task:
            if on_update is not None and changes.is_new(task):
                answer = on_update(task)  # sync: on_update(task)
                if inspect.isawaitable(answer):  # async only
                    await answer  # async only
            return task

        task = await seen(await self.get_task(task_id))
        streaming = (self._use_stream if stream is None else stream) and self._stream_available
        if not task.is_finished and streaming:
            followed = await self._follow_stream(task, deadline, seen)
            if followed is not None:
                task = followed if followed.is_finished else await seen(await self.get_task(task_id))
        while not task.is_finished:
            now = self._clock()
            if deadline is not None and now >= deadline:
                raise WaitTimeoutError(task, timeout or 0.0)
            pause = self._poll_schedule(now - started)
            if deadline is not None:
                pause = min(pause, deadline - now)
            await self._sleep(max(0.0, pause))
            task = await seen(await self.get_task(task_id))
        if raise_on_failure and not task.succeeded:
            raise GenerationFailedError.of_task(task)
        return task

    async def _follow_stream(
        self, task: Task, deadline: float | None, seen: Callable[[Task], Awaitable[Task]]
    ) -> Task | None:
        """Follow the live stream until the task ends; answers the last task seen when the stream
        breaks off or falls quiet, None when there is no stream (the caller polls from there)."""
        remaining = None if deadline is None else deadline - self._clock()
        try:
            async with self._http.stream(
                "GET",
                wire.STREAM,
                params={"taskId": task.task_id},
                headers=self._connection.headers,
                timeout=wire.stream_timeout(self._timeout, remaining),
            ) as response:
                if not wire.is_event_stream(response):
                    await response.aread()
                    if wire.stream_is_missing(response):
                        self._stream_available = False
                    return None
                decoder = wire.EventStreamDecoder()
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    update = wire.stream_update(event) if event is not None else None
                    if isinstance(update, Task):
                        return await seen(update)
                    if isinstance(update, StateChange):
                        changed = dataclasses.replace(task, state=update.state, progress=update.progress)
                        task = await seen(changed)
                    if deadline is not None and self._clock() >= deadline:
                        return task
        except httpx.TransportError:
            return task  # polling takes over, and says so if the server is gone
        return task

    async def list_tasks(
        self, *, state: str | None = None, page_size: int = 20, cursor: str | None = None
    ) -> TaskPage:
        """One page of your tasks, newest first (``jobs/list``, a Kinema extension)."""
        params: dict[str, str | int] = {"pageSize": page_size}
        if cursor:
            params["cursor"] = cursor
        if state:
            params["state"] = state
        return TaskPage.from_wire(await self._call("GET", wire.LIST_TASKS, params=params) or {})

    async def iter_tasks(self, *, state: str | None = None, limit: int | None = None) -> AsyncIterator[Task]:
        """Your tasks, newest first, page after page, at most `limit` of them."""
        cursor: str | None = None
        count = 0
        while True:
            page_size = 100 if limit is None else max(1, min(100, limit - count))
            page = await self.list_tasks(state=state, page_size=page_size, cursor=cursor)
            for task in page.tasks:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield task
            if page.next_cursor is None or (limit is not None and count >= limit):
                return
            cursor = page.next_cursor

    async def cancel(self, task_id: str) -> Task:
        """Cancel a task (``jobs/cancel``, a Kinema extension); answers the task as it now is."""
        return Task.from_wire(await self._call("POST", wire.CANCEL, json={"taskId": task_id}))

    # Files.

    async def upload_file(
        self,
        source: wire.UploadSource,
        *,
        upload_path: str = wire.DEFAULT_UPLOAD_PATH,
        file_name: str | None = None,
    ) -> UploadedFile:
        """Upload a local file (a path), bytes, or the file at an ``http(s)`` URL (the server
        fetches it). Pass the answer's ``download_url`` as a task's ``image_url``."""
        if wire.is_url(source):
            body = wire.url_upload_body(str(source), upload_path, file_name)
            return UploadedFile.from_wire(await self._call("POST", wire.URL_UPLOAD, json=body))
        upload = await asyncio.to_thread(wire.MultipartUpload.of, source, file_name)
        fields, files = upload.form(upload_path)
        return UploadedFile.from_wire(await self._call("POST", wire.STREAM_UPLOAD, data=fields, files=files))

    async def download_url(self, url: str) -> str:
        """A fresh link, valid for 20 minutes, to a result or upload of yours."""
        return str(await self._call("POST", wire.DOWNLOAD_URL, json={"url": url}))

    async def download(
        self, task_or_url: Task | str, dest: str | os.PathLike[str], *, chunk_size: int = 1 << 20
    ) -> Path:
        """Stream a task's video (a :class:`Task`, a task id, or a file link) to `dest` (a file, or
        a folder for ``<taskId>.mp4``); answers the path. An expired link of a task is renewed."""
        url, task_id = await self._link_of(task_or_url)
        path = wire.destination(dest, task_id, url)
        try:
            await self._fetch(url, path, chunk_size)
        except DownloadError as error:
            if task_id is None or error.status not in (403, 410):
                raise
            url, _ = await self._link_of(await self.get_task(task_id))
            await self._fetch(url, path, chunk_size)
        return path

    async def _link_of(self, task_or_url: Task | str) -> tuple[str, str | None]:
        if isinstance(task_or_url, str) and wire.is_url(task_or_url):
            return task_or_url, None
        task = task_or_url if isinstance(task_or_url, Task) else await self.get_task(task_or_url)
        if task.video_url is None:
            raise KinemaClientError(f"task {task.task_id} has no video (it is {task.state})")
        return task.video_url, task.task_id

    async def _fetch(self, url: str, path: Path, chunk_size: int) -> None:
        partial = path.with_name(path.name + ".part")
        try:
            async with self._http.stream(
                "GET", url, timeout=wire.download_timeout(self._timeout), follow_redirects=True
            ) as response:
                if response.status_code != 200:
                    raise DownloadError(url, response.status_code, wire.download_reason(response.status_code))
                path.parent.mkdir(parents=True, exist_ok=True)
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes(chunk_size):
                        out.write(chunk)
            partial.replace(path)
        except httpx.TransportError as error:
            raise wire.connection_error(error, wire.origin(str(self._http.base_url.join(url)))) from error
        finally:
            partial.unlink(missing_ok=True)

    # The account.

    async def credits(self) -> int:
        """The account's balance."""
        return int(await self._call("GET", wire.CREDIT))

    # One call, its rate-limit retries, and its errors.

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        retries = 0
        while True:
            try:
                response = await self._http.request(
                    method,
                    path,
                    params=params,
                    json=json,
                    data=data,
                    files=files,
                    headers=self._connection.headers | (headers or {}),
                )
            except httpx.TransportError as error:
                raise wire.connection_error(error, self.base_url) from error
            try:
                return wire.envelope_data(response)
            except RateLimitError as error:
                if retries >= self._rate_limit_retries:
                    raise
                retries += 1
                await self._sleep(wire.rate_limit_pause(error))
