"""Downloading and posting to user-given URLs, each checked before anything connects.

Every URL, and every redirect, is checked against the policy (`kinema.net.addresses`). The
connection then goes to the checked address itself, with the original Host header and TLS server
name, so a DNS answer that changes between the check and the connection cannot steer it anywhere
else. One deadline (`kinema.net.deadline`) bounds each whole transfer.

Used to download ``input.image_url``, for upload by URL, and to POST callbacks.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import httpx

from kinema import __version__
from kinema.net.addresses import CheckedTarget, Resolver, check_url, resolve_host
from kinema.net.cookies import cookie_free_jar
from kinema.net.deadline import AlarmFactory, Deadline, Monotonic, thread_alarm
from kinema.net.policy import FetchFailed, FetchPolicy


@dataclass(frozen=True, slots=True)
class FetchedBody:
    """A downloaded body, complete and within the size limit."""

    data: bytes
    content_type: str | None  #: As the server declared it; not to be trusted for the type.
    final_url: str  #: The URL the body came from, after redirects.


@dataclass(frozen=True, slots=True)
class PostOutcome:
    """How the server answered a POST; any status, redirects included, is an answer."""

    status: int
    latency_ms: int  #: From sending the request to receiving the response headers.
    location: str | None  #: The Location header, for a redirect that was not followed.


_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_MEGABYTE: Final = 1024 * 1024
_KILOBYTE: Final = 1024


class SafeFetcher:
    """Downloads and posts to user-given URLs under a FetchPolicy. Safe to share between threads.

    ``resolver`` defaults to the system resolver; ``transport`` to httpx's own, without keep-alive
    (a pooled connection, keyed by address, could otherwise carry a request for another host name
    than the one its certificate was checked for). ``clock`` and ``alarm`` are the time the
    deadlines and latencies run on (`kinema.net.deadline`).
    """

    def __init__(
        self,
        policy: FetchPolicy,
        resolver: Resolver | None = None,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Monotonic = time.monotonic,
        alarm: AlarmFactory = thread_alarm,
    ) -> None:
        self._policy = policy
        self._resolver = resolver or resolve_host
        self._clock = clock
        self._alarm = alarm
        if transport is None:
            transport = httpx.HTTPTransport(retries=0, limits=httpx.Limits(max_keepalive_connections=0))
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,  # each redirect is checked here before it is followed
            trust_env=False,  # no proxies, .netrc credentials or CA bundles from the environment
            cookies=cookie_free_jar(),  # one user's cookies must not reach another's URL
            headers={
                "User-Agent": f"Kinema/{__version__}",
                # Undecoded, the size limit counts the bytes that arrive; no decompression bomb.
                "Accept-Encoding": "identity",
                "Connection": "close",
            },
        )

    @property
    def policy(self) -> FetchPolicy:
        return self._policy

    def get(self, url: str, *, field: str = "image_url", max_bytes: int | None = None) -> FetchedBody:
        """Download a URL, following at most ``max_redirects`` redirects, each one checked again.

        ``max_bytes``, when given, caps this body instead of the policy's ``max_bytes`` (an upload
        by URL takes files as large as uploads may be).
        """
        policy = self._policy
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        cap = policy.max_bytes if max_bytes is None else max_bytes
        timed_out = f"{field} did not finish downloading within {policy.total_timeout_s:g} s"
        deadline = self._deadline(policy.total_timeout_s)
        with deadline, _transfer_errors(field, deadline, timed_out):
            current: str | httpx.URL = url
            redirects = 0
            while True:
                target = check_url(
                    current, policy, field=field, resolver=self._resolver, redirected=redirects > 0
                )
                response = self._send(target, "GET", deadline, connect_timeout_s=policy.connect_timeout_s)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_STATUSES and location is not None:
                        if redirects >= policy.max_redirects:
                            raise FetchFailed(
                                f"{field} could not be downloaded: "
                                f"it redirects more than {policy.max_redirects} times"
                            )
                        current = _redirect_target(target.url, location, field)
                        redirects += 1
                        continue
                    if not response.is_success:
                        status = response.status_code
                        raise FetchFailed(
                            f"{field} could not be downloaded: the server answered HTTP {status}"
                        )
                    data = _read_capped(response, deadline, cap, field, timed_out)
                finally:
                    response.close()
                return FetchedBody(
                    data=data, content_type=response.headers.get("content-type"), final_url=str(target.url)
                )

    def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        timeout_s: float,
        field: str = "callBackUrl",
    ) -> PostOutcome:
        """POST to a URL once and report the answer; a redirect is returned, not followed.

        Raises FetchRefused for a URL the policy forbids and FetchFailed when no answer arrives.
        """
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        timed_out = f"{field} did not answer within {timeout_s:g} s"
        deadline = self._deadline(timeout_s)
        with deadline, _transfer_errors(field, deadline, timed_out):
            target = check_url(url, self._policy, field=field, resolver=self._resolver)
            started = self._clock()
            response = self._send(
                target,
                "POST",
                deadline,
                connect_timeout_s=min(self._policy.connect_timeout_s, timeout_s),
                content=content,
                headers=headers,
            )
            latency_ms = round((self._clock() - started) * 1000)
            # The body of the answer is of no use, and closing it unread costs nothing without keep-alive.
            response.close()
        return PostOutcome(
            status=response.status_code, latency_ms=latency_ms, location=response.headers.get("location")
        )

    def _deadline(self, seconds: float) -> Deadline:
        return Deadline(seconds, clock=self._clock, alarm=self._alarm)

    def _send(
        self,
        target: CheckedTarget,
        method: str,
        deadline: Deadline,
        *,
        connect_timeout_s: float,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send to the checked addresses in turn until one accepts the connection; the response streams."""
        # The caller's headers cannot override Host: it must name the host that was checked.
        request_headers = {name: value for name, value in (headers or {}).items() if name.lower() != "host"}
        request_headers["Host"] = target.host_header
        connect_error: httpx.TransportError | None = None
        for address in target.addresses:
            remaining = deadline.operation_timeout()
            extensions: dict[str, Any] = {
                # Per operation; the deadline's timer bounds their sum.
                "timeout": {
                    "connect": min(connect_timeout_s, remaining),
                    "read": remaining,
                    "write": remaining,
                    "pool": remaining,
                },
                "trace": deadline.watch_connection,
            }
            if target.server_name is not None:
                # The connection goes to an address, but TLS must name the host, for SNI and for the
                # certificate check.
                extensions["sni_hostname"] = target.server_name
            request = self._client.build_request(
                method,
                target.url.copy_with(host=str(address)),
                headers=request_headers,
                content=content,
                extensions=extensions,
            )
            try:
                return self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                # Nothing was sent yet, so the next address may be tried, as browsers do.
                connect_error = error
                if deadline.expired:
                    break
        assert connect_error is not None, "a checked target has at least one address"
        raise connect_error

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SafeFetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _redirect_target(current: httpx.URL, location: str, field: str) -> httpx.URL:
    try:
        return current.join(location)
    except httpx.InvalidURL as error:
        raise FetchFailed(f"{field} could not be downloaded: the server sent an invalid redirect") from error


def _read_capped(
    response: httpx.Response, deadline: Deadline, max_bytes: int, field: str, timed_out: str
) -> bytes:
    too_large = FetchFailed(f"{field} is larger than {_format_size(max_bytes)}")
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large  # before a byte of the body is read
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Asked for identity; decoding anyway would let a small body expand past the limit in memory.
        raise FetchFailed(f"{field} could not be downloaded: the server sent it compressed ({encoding})")
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
        if deadline.expired:
            raise FetchFailed(timed_out)
    return bytes(body)


def _format_size(byte_size: int) -> str:
    for unit, name in ((_MEGABYTE, "MB"), (_KILOBYTE, "KB")):
        if byte_size >= unit:
            return f"{byte_size / unit:.1f}".removesuffix(".0") + f" {name}"
    return f"{byte_size:,} bytes"


@contextmanager
def _transfer_errors(field: str, deadline: Deadline, timed_out: str) -> Iterator[None]:
    """Turn what httpx raises into a FetchFailed that says, without internals, what went wrong."""
    try:
        yield
    except httpx.TransportError as error:
        raise FetchFailed(_transfer_failure(field, error, deadline, timed_out)) from error
    except httpx.InvalidURL as error:
        # Only a URL made from a resolved address can get here (an IPv6 one with a zone index).
        raise FetchFailed(f"{field} could not be reached: its address cannot be connected to") from error


def _transfer_failure(field: str, error: httpx.TransportError, deadline: Deadline, timed_out: str) -> str:
    if deadline.expired:
        # Whatever the socket reported, it was the deadline's alarm that shut it.
        return timed_out
    if isinstance(error, httpx.ConnectTimeout):
        return f"{field} could not be reached: the server did not accept a connection in time"
    if isinstance(error, httpx.TimeoutException):
        return timed_out
    if isinstance(error, httpx.ConnectError):
        tls_error = _find_cause(error, ssl.SSLError)
        if isinstance(tls_error, ssl.SSLCertVerificationError):
            detail = tls_error.verify_message or "it is not trusted"
            return f"{field} could not be reached: the server's TLS certificate was refused ({detail})"
        if tls_error is not None:
            return f"{field} could not be reached: the TLS handshake failed"
        if _find_cause(error, ConnectionRefusedError) is not None:
            return f"{field} could not be reached: the connection was refused"
        return f"{field} could not be reached: no connection could be made"
    return f"{field} could not be reached: the connection broke off"


def _find_cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of a kind in an error's chain (httpx wraps httpcore, which wraps the OS's)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
