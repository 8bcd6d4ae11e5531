"""Fetching URLs that users give us without letting them reach inside our network (SSRF).

Every URL, and every redirect, is checked before anything connects: http or https only, no user name
or password, and every address the host resolves to must be public. The connection then goes to the
checked address itself, with the original Host header and TLS server name, so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot steer it anywhere else.

Used to download ``input.image_url``, for upload by URL, and to POST callbacks.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar, CookiePolicy
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from types import TracebackType
from typing import Any, Final, TypeAlias
from urllib.request import Request as CookieRequest

import httpx

from kinema import __version__
from kinema.domain.errors import InvalidInput

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network
#: Looks a host name up and answers its addresses as text; raises OSError when it has none.
Resolver: TypeAlias = Callable[[str], Sequence[str]]


class FetchRefused(InvalidInput):
    """The URL is one the policy forbids: not http(s), with credentials, or at a non-public address."""


class FetchFailed(InvalidInput):
    """The URL was allowed but the transfer did not succeed (DNS, connection, timeout, status, size)."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What a fetch may reach and how much it may take."""

    #: Skip the address checks (development, or a deployment that fetches from its own network);
    #: the URL checks (scheme, credentials, host) still apply.
    allow_private: bool = False
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 3
    connect_timeout_s: float = 5.0  #: For each connection attempt, TLS handshake included.
    total_timeout_s: float = 30.0  #: For the whole download, every redirect and the body included.
    #: Non-public networks fetched from all the same (an internal image store); any other address
    #: must be public.
    trusted_networks: tuple[IPNetwork, ...] = ()

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_redirects < 0:
            raise ValueError("max_bytes must be positive and max_redirects not negative")
        if self.connect_timeout_s <= 0 or self.total_timeout_s <= 0:
            raise ValueError("timeouts must be positive")


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


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL that passed the policy, with the addresses its connection may go to."""

    url: httpx.URL  #: As given, without its fragment.
    addresses: tuple[IPAddress, ...]  #: Every one checked; tried in this order.
    server_name: str | None  #: The name for TLS (SNI and certificate); None when the URL names an address.

    @property
    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")


def resolve_host(host: str) -> list[str]:
    """The addresses of a host name from the system resolver (``socket.getaddrinfo``), in its order."""
    answers = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers))


# Blocks of the IANA special-purpose registries that are not globally reachable, plus multicast.
# Listed explicitly rather than trusting ipaddress's is_global alone: its tables changed between
# patch releases, and it calls multicast and 6to4 space global.
_NON_PUBLIC_IPV4: Final = tuple(
    IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, where cloud metadata services live
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and broadcast
    )
)
#: The only IPv6 space allocated for global unicast; the rest (loopback, link- and site-local, unique
#: local, multicast, IPv4-compatible, discard, local-use NAT64, SRv6) is refused wholesale.
_GLOBAL_UNICAST_IPV6: Final = IPv6Network("2000::/3")
_NON_PUBLIC_IPV6: Final = tuple(
    IPv6Network(block)
    for block in (
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
#: Prefixes that carry an IPv4 address in their last 32 bits; such an address is as public as that one.
_NAT64_WELL_KNOWN: Final = IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR: Final = IPv6Network("2002::/16")


def is_public_address(address: IPAddress) -> bool:
    """Whether an address is globally reachable, so that fetching from it cannot reach our own network.

    An IPv6 address that embeds an IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by the IPv4
    address, since that is where the packets end up.
    """
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        return _is_public_ipv6(address) if embedded is None else _is_public_ipv4(embedded)
    return _is_public_ipv4(address)


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_WELL_KNOWN:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def _is_public_ipv4(address: IPv4Address) -> bool:
    if any(address in block for block in _NON_PUBLIC_IPV4):
        return False
    # Belt and braces: whatever the running Python also knows to be special stays refused.
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_private)


def _is_public_ipv6(address: IPv6Address) -> bool:
    if address not in _GLOBAL_UNICAST_IPV6 or any(address in block for block in _NON_PUBLIC_IPV6):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_private)


_SCHEMES: Final = frozenset({"http", "https"})
#: A host name as httpx hands it over: IDNA-encoded, so ASCII letters, digits, hyphens (and the
#: underscores some real names have), in non-empty labels, with an optional root dot.
_HOST_NAME: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?", re.IGNORECASE)
_IPV4_NUMBER: Final = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)


def check_url(
    url: str | httpx.URL,
    policy: FetchPolicy,
    *,
    field: str,
    resolver: Resolver = resolve_host,
    redirected: bool = False,
) -> CheckedTarget:
    """Check a URL against the policy and resolve its host; the connection must go to one of the answers.

    Raises FetchRefused for what the policy forbids and FetchFailed when the host does not resolve.
    ``redirected`` words the messages for a URL that a server redirected to.
    """
    parsed = _parse_url(url, field, redirected)
    host = parsed.raw_host.decode("ascii")
    literal = _literal_address(host, field)
    if literal is not None:
        addresses: tuple[IPAddress, ...] = (literal,)
        server_name = None
    else:
        if len(host) > 254 or not _HOST_NAME.fullmatch(host):
            raise FetchRefused(f"{field} has an invalid host name")
        addresses = _resolve(host, resolver, field)
        # SNI carries the name without the root dot (RFC 6066), and certificates are issued that way.
        server_name = host.removesuffix(".")
    if not policy.allow_private:
        for address in addresses:
            if not is_public_address(address) and not any(
                address in network for network in policy.trusted_networks
            ):
                verb = "redirects to" if redirected else "points to"
                raise FetchRefused(f"{field} {verb} a private or reserved address ({address})")
    return CheckedTarget(url=parsed, addresses=addresses, server_name=server_name)


def _parse_url(url: str | httpx.URL, field: str, redirected: bool) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        what = "a redirect that is not" if redirected else "not"
        raise FetchRefused(f"{field} is {what} a valid URL") from error
    if parsed.scheme not in _SCHEMES:
        if redirected:
            raise FetchRefused(f"{field} redirects to a URL that is not http or https")
        raise FetchRefused(f"{field} must be an http or https URL")
    if parsed.userinfo:
        # Credentials in a URL end up in logs and in the Authorization header of whatever it reaches.
        if redirected:
            raise FetchRefused(f"{field} redirects to a URL with a user name or password")
        raise FetchRefused(f"{field} must not contain a user name or password")
    if not parsed.raw_host:
        raise FetchRefused(f"{field} has no host")
    port = parsed.port
    if port is not None and not 0 < port < 65536:
        raise FetchRefused(f"{field} has an invalid port ({port})")
    return parsed.copy_with(fragment=None)


def _literal_address(host: str, field: str) -> IPAddress | None:
    """The address a host names directly, in any form a browser or the C library reads; None for a name."""
    if ":" not in host:
        return _numeric_ipv4(host, field)
    # Only an IPv6 literal has colons; httpx has taken its brackets off. A zone index ("%eth0") names
    # an interface of ours, which no user-given URL has any business with.
    try:
        if "%" not in host:
            return IPv6Address(host)
    except ValueError:
        pass
    raise FetchRefused(f"{field} has an invalid IPv6 address ({host})")


def _numeric_ipv4(host: str, field: str) -> IPv4Address | None:
    """An IPv4 host written in numbers, read as browsers (the WHATWG URL standard) and inet_aton read it.

    ``2130706433``, ``0x7f.1``, ``127.1`` and ``017700000001`` all mean 127.0.0.1 to them. Reading them
    the same way here means the check sees the address a connection would go to, whatever resolver
    is in use. A host whose last label is a number but that is no valid address is refused, as
    browsers refuse it; any other host is a name (None).
    """
    parts = host.split(".")
    if len(parts) > 1 and not parts[-1]:
        parts.pop()
    if not _IPV4_NUMBER.fullmatch(parts[-1]):
        return None
    malformed = FetchRefused(f"{field} has a malformed numeric host ({host})")
    if len(parts) > 4 or not all(_IPV4_NUMBER.fullmatch(part) for part in parts):
        raise malformed
    try:
        numbers = [_ipv4_number(part) for part in parts]
    except ValueError:
        raise malformed from None
    *leading, last = numbers
    # The last number fills every byte that the leading ones (one byte each) leave.
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        raise malformed
    value = last
    for position, number in enumerate(leading):
        value += number << (8 * (3 - position))
    return IPv4Address(value)


def _ipv4_number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)  # raises ValueError on 8 or 9, which makes the host malformed
    return int(part)


def _resolve(host: str, resolver: Resolver, field: str) -> tuple[IPAddress, ...]:
    not_found = FetchFailed(f"{field} could not be reached: the host {host} was not found")
    try:
        answers = resolver(host)
    except (OSError, UnicodeError) as error:
        raise not_found from error
    try:
        addresses = tuple(dict.fromkeys(ip_address(answer) for answer in answers))
    except ValueError as error:
        raise not_found from error
    if not addresses:
        raise not_found
    return addresses


_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_MEGABYTE: Final = 1024 * 1024
_KILOBYTE: Final = 1024
#: httpcore's trace event for a new TCP connection; its return value is the connection's stream.
_CONNECTION_OPENED: Final = "connection.connect_tcp.complete"


class SafeFetcher:
    """Downloads and posts to user-given URLs under a FetchPolicy. Safe to share between threads.

    ``resolver`` defaults to the system resolver; ``transport`` to httpx's own, without keep-alive
    (a pooled connection, keyed by address, could otherwise carry a request for another host name
    than the one its certificate was checked for).
    """

    def __init__(
        self,
        policy: FetchPolicy,
        resolver: Resolver | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver or resolve_host
        if transport is None:
            transport = httpx.HTTPTransport(retries=0, limits=httpx.Limits(max_keepalive_connections=0))
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,  # each redirect is checked here before it is followed
            trust_env=False,  # no proxies, .netrc credentials or CA bundles from the environment
            cookies=CookieJar(policy=_RefuseAllCookies()),  # one user's cookies must not reach another's URL
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

    def get(self, url: str, *, field: str = "image_url") -> FetchedBody:
        """Download a URL, following at most ``max_redirects`` redirects, each one checked again."""
        policy = self._policy
        timed_out = f"{field} did not finish downloading within {policy.total_timeout_s:g} s"
        with _Deadline(policy.total_timeout_s) as deadline, _transfer_errors(field, deadline, timed_out):
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
                    data = _read_capped(response, deadline, policy.max_bytes, field, timed_out)
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
        with _Deadline(timeout_s) as deadline, _transfer_errors(field, deadline, timed_out):
            target = check_url(url, self._policy, field=field, resolver=self._resolver)
            started = time.perf_counter()
            response = self._send(
                target,
                "POST",
                deadline,
                connect_timeout_s=min(self._policy.connect_timeout_s, timeout_s),
                content=content,
                headers=headers,
            )
            latency_ms = round((time.perf_counter() - started) * 1000)
            # The body of the answer is of no use, and closing it unread costs nothing without keep-alive.
            response.close()
        return PostOutcome(
            status=response.status_code, latency_ms=latency_ms, location=response.headers.get("location")
        )

    def _send(
        self,
        target: CheckedTarget,
        method: str,
        deadline: _Deadline,
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
    response: httpx.Response, deadline: _Deadline, max_bytes: int, field: str, timed_out: str
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
def _transfer_errors(field: str, deadline: _Deadline, timed_out: str) -> Iterator[None]:
    """Turn what httpx raises into a FetchFailed that says, without internals, what went wrong."""
    try:
        yield
    except httpx.TransportError as error:
        raise FetchFailed(_transfer_failure(field, error, deadline, timed_out)) from error
    except httpx.InvalidURL as error:
        # Only a URL made from a resolved address can get here (an IPv6 one with a zone index).
        raise FetchFailed(f"{field} could not be reached: its address cannot be connected to") from error


def _transfer_failure(field: str, error: httpx.TransportError, deadline: _Deadline, timed_out: str) -> str:
    if deadline.expired:
        # Whatever the socket reported, it was the deadline's timer that shut it.
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


class _Deadline:
    """The time one transfer may take in all, kept even against a server that sends a byte at a time.

    httpx's timeouts bound each socket operation, not their sum: a server answering just inside the
    read timeout, a header byte at a time, could hold a transfer open without end. So a timer shuts the
    connection down when the time is up, which wakes a read blocked in the fetching thread. It shuts
    down a duplicate of the socket's descriptor, which the timer owns: the connection's own descriptor
    may be closed, and its number given to another socket, at any moment.
    """

    def __init__(self, seconds: float) -> None:
        self._ends_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timed_out = False
        self._finished = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        with self._lock:
            self._finished = True
            self._replace_socket(None)

    @property
    def expired(self) -> bool:
        return self._timed_out or time.monotonic() >= self._ends_at

    def operation_timeout(self) -> float:
        """The time left, as a timeout for one socket operation (never zero, which means non-blocking)."""
        return max(self._ends_at - time.monotonic(), 0.001)

    def watch_connection(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace hook: take hold of each connection's socket as it opens."""
        if event != _CONNECTION_OPENED:
            return
        stream = info.get("return_value")
        connection = None if stream is None else stream.get_extra_info("socket")
        if not isinstance(connection, socket.socket):
            return
        duplicate = socket.socket(fileno=socket.dup(connection.fileno()))
        with self._lock:
            self._replace_socket(duplicate)
            if self._timed_out or self._finished:
                _shut_down(duplicate)

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._timed_out = True
            if self._socket is not None:
                _shut_down(self._socket)

    def _replace_socket(self, duplicate: socket.socket | None) -> None:
        # Called with the lock held. Closing the previous duplicate lets that connection really close.
        if self._socket is not None:
            self._socket.close()
        self._socket = duplicate


def _shut_down(connection: socket.socket) -> None:
    # The peer may have closed it already; it is stopped either way.
    with suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _RefuseAllCookies(CookiePolicy):
    """A cookie policy that neither stores nor sends any cookie."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: Cookie, request: CookieRequest) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: CookieRequest) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: CookieRequest) -> bool:
        return False

    def path_return_ok(self, path: str, request: CookieRequest) -> bool:
        return False
