"""MiniMax's video API over HTTP: each call retried until it answers, each wait cut short by a cancel.

A call first takes a turn on the rate gate (submissions and polls do; the file lookup does not).
Network failures, HTTP 5xx and 429, garbled answers and MiniMax's transient codes are retried
after an exponential backoff; "rate limited" answers are waited out; any other refusal becomes
its error (`codes.refusal`). The API key never travels into a log or an error message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import httpx

from kinema import __version__
from kinema.domain.errors import EngineMisconfigured, GenerationCanceled, GenerationFailed
from kinema.engines.base import CancelCheck
from kinema.engines.minimax.codes import RATE_LIMITED, TRANSIENT, StatusCode, refusal, status_of
from kinema.engines.minimax.config import MinimaxConfig

log = logging.getLogger("kinema.engines.minimax")

SUBMIT_PATH: Final = "/v1/video_generation"
QUERY_PATH: Final = "/v1/query/video_generation"
RETRIEVE_PATH: Final = "/v1/files/retrieve"

#: How often a wait looks at `should_cancel`, so a cancel is seen within this long.
CANCEL_CHECK_S: Final = 0.2
_CANCEL_CHECK_MS: Final = round(CANCEL_CHECK_S * 1000)
_DOWNLOAD_CHUNK: Final = 1 << 20

#: Called as a download goes: the bytes received so far, and the total the server declared (0 if none).
DownloadProgress = Callable[[int, int], None]


class Retry(Exception):
    """A failure worth retrying after a wait: the network, HTTP 5xx or 429, a garbled answer."""


class Waits:
    """The waits of one generation: on the configured sleeper, in steps that look for a cancel."""

    def __init__(self, config: MinimaxConfig, should_cancel: CancelCheck) -> None:
        self._sleep = config.sleep
        self.should_cancel = should_cancel

    def pause(self, seconds: float) -> bool:
        """Wait `seconds`, or less when asked to stop; answers True if asked to stop, like `Event.wait`.

        The steps are counted rather than timed on the clock, so a wall clock that jumps
        neither stretches a wait nor cuts it short.
        """
        left_ms = round(seconds * 1000)
        while not self.should_cancel():
            if left_ms <= 0:
                return False
            step_ms = min(left_ms, _CANCEL_CHECK_MS)
            self._sleep(step_ms / 1000)
            left_ms -= step_ms
        return True

    def wait(self, seconds: float) -> None:
        """Wait `seconds`; raises GenerationCanceled if asked to stop meanwhile."""
        if self.pause(seconds):
            raise GenerationCanceled("stopped while waiting for MiniMax")

    def check_cancel(self) -> None:
        if self.should_cancel():
            raise GenerationCanceled("stopped")


class MinimaxClient:
    """MiniMax's API through one connection pool, shared by every generation thread of a worker."""

    def __init__(self, config: MinimaxConfig) -> None:
        self.config = config
        self._http: httpx.Client | None = None

    @property
    def is_open(self) -> bool:
        return self._http is not None

    def open(self) -> None:
        """Open the connection pool; no request is made."""
        if self._http is None:
            self._http = httpx.Client(
                timeout=httpx.Timeout(self.config.read_timeout_s, connect=self.config.connect_timeout_s),
                headers={"User-Agent": f"kinema/{__version__}"},
            )

    def close(self) -> None:
        """Close the pool's connections; `open` opens a new one."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def call(
        self,
        waits: Waits,
        method: str,
        path: str,
        *,
        gated: bool,
        submitting: bool = False,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One API call, retried until it answers; raises the mapped error for a refusal."""
        http = self._client()
        failures = 0
        while True:
            if gated and not self.config.gate.wait_turn(waits.should_cancel, waits.pause):
                raise GenerationCanceled("stopped while waiting for a turn at MiniMax's rate limit")
            waits.check_cancel()
            try:
                response = http.request(
                    method,
                    self.config.base_url + path,
                    params=params,
                    json=json_body,
                    headers={"Authorization": f"Bearer {self.config.api_key}"},
                )
                answer = _answer(method, path, response)
            except (httpx.TransportError, Retry) as error:
                failures = self.back_off(waits, failures, f"{method} {path}", error)
                continue
            code, message = status_of(answer)
            if code == StatusCode.OK:
                return answer
            message = self.scrub(message)
            if code in RATE_LIMITED:
                wait_s = self.config.rate_limited_s
                log.info("MiniMax rate limited %s %s (%d); waiting %g s", method, path, code, wait_s)
                waits.wait(wait_s)
                continue
            if code in TRANSIENT:
                failures = self.back_off(
                    waits, failures, f"{method} {path}", Retry(f"error {code}: {message}")
                )
                continue
            raise refusal(code, message, submitting=submitting)

    def download(
        self, waits: Waits, link: Callable[[], str], path: Path, what: str, on_received: DownloadProgress
    ) -> int:
        """Fetch a file to `path`, retried with a fresh `link()` on every try; answers its size.

        MiniMax's links expire, so each try asks for a new one.
        """
        failures = 0
        while True:
            url = link()
            try:
                return self._stream_to(waits, url, path, on_received)
            except (httpx.TransportError, Retry) as error:
                failures = self.back_off(waits, failures, what, error)

    def _stream_to(self, waits: Waits, url: str, path: Path, on_received: DownloadProgress) -> int:
        # The link is MiniMax's CDN: no Authorization header goes there.
        with self._client().stream("GET", url, follow_redirects=True) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise Retry(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise GenerationFailed(f"MiniMax's video link answered HTTP {response.status_code}")
            total = int(response.headers.get("Content-Length") or 0)
            received = 0
            with path.open("wb") as out:
                for chunk in response.iter_bytes(_DOWNLOAD_CHUNK):
                    waits.check_cancel()
                    out.write(chunk)
                    received += len(chunk)
                    on_received(received, total)
        return received

    def back_off(self, waits: Waits, failures: int, what: str, error: Exception) -> int:
        """Wait before the next try (1, 2, 4 ... s, capped); answers the failures so far."""
        delay = min(self.config.retry_max_s, self.config.retry_initial_s * 2**failures)
        log.warning("MiniMax: %s failed (%s); retrying in %g s", what, self._describe(error), delay)
        waits.wait(delay)
        return failures + 1

    def scrub(self, text: str) -> str:
        """Never let the key travel into a log or a task's failMsg, even if MiniMax echoes it."""
        return text.replace(self.config.api_key, "***") if self.config.api_key else text

    def _describe(self, error: Exception) -> str:
        return self.scrub(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)

    def _client(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("MinimaxEngine.setup() must be called before generate()")
        return self._http


def _answer(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    if status == 429 or status >= 500:
        raise Retry(f"HTTP {status}")
    if status in (401, 403):
        raise EngineMisconfigured(f"MiniMax refused the API key (HTTP {status})")
    if status in (404, 405):
        raise EngineMisconfigured(
            f"MiniMax's API has no {method} {path} at the configured base URL (HTTP {status})"
        )
    if status != 200:
        raise GenerationFailed(f"MiniMax answered HTTP {status} to {method} {path}")
    try:
        answer = response.json()
    except ValueError as error:
        raise Retry("an answer that is not JSON") from error
    if not isinstance(answer, dict):
        raise Retry("an answer that is not a JSON object")
    return answer
