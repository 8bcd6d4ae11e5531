"""The SSRF-safe fetcher against real HTTP(S) servers on loopback.

Loopback is private, so a server that stands in for a public one listens on 127.0.0.2, which the
policy under test trusts (``trusted_networks``); 127.0.0.1 plays the internal target that must never
be reached. Every other rule of the policy applies unchanged.
"""

from __future__ import annotations

import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.polling import wait_for

from kinema.net.deadline import Alarm
from kinema.net.fetcher import FetchedBody, PostOutcome, SafeFetcher
from kinema.net.policy import FetchFailed, FetchPolicy, FetchRefused

FIELD = "input.image_url"
PUBLIC_STAND_IN = "127.0.0.2"
INTERNAL = "127.0.0.1"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
KB = 1024


def policy(**changes: Any) -> FetchPolicy:
    settings: dict[str, Any] = {
        "trusted_networks": (ip_network(f"{PUBLIC_STAND_IN}/32"),),
        "connect_timeout_s": 2.0,
        "total_timeout_s": 5.0,
    }
    settings.update(changes)
    return FetchPolicy(**settings)


@dataclass(frozen=True)
class Seen:
    """One request as a server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Handler(BaseHTTPRequestHandler):
    """Records each request, then answers it with the server's route for its path (404 without one)."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # a stuck client cannot hold a handler thread, and so the test's teardown, for ever

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self.close_connection = True
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.server.owner
        with owner.lock:
            owner.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
        route = owner.routes.get(self.path.partition("?")[0])
        if route is None:
            self.reply(404, b"not found")
        else:
            route(self)

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what was seen, not the access log."""


Route = Callable[[Handler], None]


class _HTTPServer(ThreadingHTTPServer):
    # Handler threads are joined by server_close(), so nothing a test started outlives it.
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: LoopbackServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn), which is slow and not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner.errors.append(repr(client_address))


class LoopbackServer:
    """An HTTP(S) server in a thread, with routes by path and a record of every request."""

    def __init__(self, host: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        #: Set at teardown; routes that stall or drip wait on it, so they end with the test.
        self.stopping = threading.Event()
        self.dripped = 0  #: Bytes the dripping routes have sent so far.
        self._httpd = _HTTPServer(self, (host, port))
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def url(self, path: str, host: str | None = None, scheme: str = "http") -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


ServerFactory = Callable[..., LoopbackServer]


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    """Start servers with serve(host, port=0, tls=None); all are stopped and joined after the test."""
    try:
        with socket.socket() as probe:
            probe.bind((PUBLIC_STAND_IN, 0))
    except OSError:
        pytest.skip(f"this system cannot listen on {PUBLIC_STAND_IN}")
    started: list[LoopbackServer] = []

    def start(
        host: str = PUBLIC_STAND_IN, port: int = 0, tls: ssl.SSLContext | None = None
    ) -> LoopbackServer:
        server = LoopbackServer(host, port, tls)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.close()
    for server in started:
        assert server.errors == [], f"handlers failed on {server.host}:{server.port}"


@pytest.fixture
def public_and_internal(serve: ServerFactory) -> tuple[LoopbackServer, LoopbackServer]:
    """A stand-in public server and an internal one on the same port, so only the address tells them apart."""
    public = serve(PUBLIC_STAND_IN)
    internal = serve(INTERNAL, public.port)
    internal.routes["/cat.png"] = internal.routes["/secret"] = answer(200, b"internal secret")
    return public, internal


class FakeResolver:
    """Answers from a table and records what was asked."""

    def __init__(self, answers: dict[str, Sequence[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


def stand_in_resolver(*names: str) -> FakeResolver:
    return FakeResolver({name: [PUBLIC_STAND_IN] for name in names or ("images.example",)})


def serve_png(handler: Handler) -> None:
    handler.reply(200, PNG, {"Content-Type": "image/png", "Set-Cookie": "session=abc; Path=/"})


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Route:
    return lambda handler: handler.reply(status, body, headers)


def stall(handler: Handler) -> None:
    """Never answer (until the test ends)."""
    handler.server.owner.stopping.wait(10)


class HandAlarm:
    """An alarm that rings only when the test rings it."""

    def __init__(self, seconds: float, function: Callable[[], None]) -> None:
        self.seconds = seconds
        self.function = function
        self.started = False
        self.canceled = False

    def start(self) -> None:
        self.started = True

    def cancel(self) -> None:
        self.canceled = True

    def ring(self) -> None:
        assert self.started, "only a started alarm can ring"
        assert not self.canceled, "a canceled alarm never rings"
        self.function()


class HandAlarms:
    """Makes the fetcher's alarms (an `AlarmFactory`) and keeps them for the test to ring."""

    def __init__(self) -> None:
        self.made: list[HandAlarm] = []

    def __call__(self, seconds: float, function: Callable[[], None]) -> Alarm:
        alarm = HandAlarm(seconds, function)
        self.made.append(alarm)
        return alarm


class HandClock:
    """Monotonic seconds that move only when the test (or a route) moves them."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def unused_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def test_downloads_body_and_content_type_from_the_checked_address(serve: ServerFactory) -> None:
    server = serve()
    server.routes["/cat.png"] = serve_png
    resolver = stand_in_resolver()
    url = server.url("/cat.png?size=large#ignored", host="images.example")
    with SafeFetcher(policy(), resolver=resolver) as fetcher:
        first = fetcher.get(url, field=FIELD)
        fetcher.get(url, field=FIELD)
    assert first == FetchedBody(
        data=PNG, content_type="image/png", final_url=server.url("/cat.png?size=large", host="images.example")
    )
    assert resolver.asked == ["images.example", "images.example"]
    request, again = server.seen
    assert (request.method, request.path) == ("GET", "/cat.png?size=large")
    # The connection went to the address, the request names the host.
    assert request.headers["Host"] == f"images.example:{server.port}"
    assert request.headers["Accept-Encoding"] == "identity"
    assert "Cookie" not in again.headers, "cookies from one URL must not follow to the next"


def test_loopback_is_refused_by_default_and_never_contacted(serve: ServerFactory) -> None:
    server = serve(INTERNAL)
    server.routes["/cat.png"] = serve_png
    with SafeFetcher(FetchPolicy()) as fetcher, pytest.raises(FetchRefused) as refused:
        fetcher.get(server.url("/cat.png"), field=FIELD)
    assert refused.value.message == f"{FIELD} points to a private or reserved address (127.0.0.1)"
    assert server.seen == []
    with SafeFetcher(FetchPolicy(allow_private=True)) as fetcher:
        assert fetcher.get(server.url("/cat.png"), field=FIELD).data == PNG


def test_answers_other_than_2xx_fail(serve: ServerFactory) -> None:
    server = serve()
    with SafeFetcher(policy(), resolver=stand_in_resolver()) as fetcher, pytest.raises(FetchFailed) as failed:
        fetcher.get(server.url("/missing.png", host="images.example"), field=FIELD)
    assert failed.value.message == f"{FIELD} could not be downloaded: the server answered HTTP 404"
    assert failed.value.code == 422


def stream_body(total: int, chunked: bool, sent: list[int], done: threading.Event) -> Route:
    """A route that sends ``total`` bytes in 64 KB pieces and records how many left before the client went."""

    def route(handler: Handler) -> None:
        piece = b"\0" * (64 * KB)
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(total))
        handler.end_headers()
        count = 0
        try:
            while count < total:
                size = min(len(piece), total - count)
                if chunked:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (size, piece[:size]))
                else:
                    handler.wfile.write(piece[:size])
                count += size
            if chunked:
                handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            pass  # the client hung up, which is what is being tested
        finally:
            sent.append(count)
            done.set()

    return route


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_size_cap_stops_the_download_early(serve: ServerFactory, chunked: bool) -> None:
    server = serve()
    total = 64 * 1024 * KB
    sent: list[int] = []
    done = threading.Event()
    server.routes["/huge.png"] = stream_body(total, chunked, sent, done)
    with SafeFetcher(policy(max_bytes=256 * KB), resolver=stand_in_resolver()) as fetcher:
        with pytest.raises(FetchFailed) as failed:
            fetcher.get(server.url("/huge.png", host="images.example"), field=FIELD)
        assert failed.value.message == f"{FIELD} is larger than 256 KB"
        assert done.wait(10), "the server kept sending after the client gave up"
    assert sent[0] < total // 4, f"{sent[0]:,} of {total:,} bytes were sent before the client stopped"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_size_cap_is_inclusive(serve: ServerFactory, chunked: bool) -> None:
    server = serve()
    limit = 100 * KB
    for size in (limit, limit + 1):
        server.routes[f"/{size}"] = stream_body(size, chunked, [], threading.Event())
    with SafeFetcher(policy(max_bytes=limit), resolver=stand_in_resolver()) as fetcher:
        assert len(fetcher.get(server.url(f"/{limit}", host="images.example")).data) == limit
        with pytest.raises(FetchFailed, match="is larger than 100 KB"):
            fetcher.get(server.url(f"/{limit + 1}", host="images.example"))


def test_a_call_may_set_its_own_size_cap(serve: ServerFactory) -> None:
    server = serve()
    server.routes["/200"] = stream_body(200 * KB, False, [], threading.Event())
    url = server.url("/200", host="images.example")
    with SafeFetcher(policy(max_bytes=100 * KB), resolver=stand_in_resolver()) as fetcher:
        assert len(fetcher.get(url, max_bytes=200 * KB).data) == 200 * KB
        with pytest.raises(FetchFailed, match="is larger than 150 KB"):
            fetcher.get(url, max_bytes=150 * KB)
        with pytest.raises(FetchFailed, match="is larger than 100 KB"):
            fetcher.get(url)


def drip(handler: Handler, data: bytes) -> None:
    """Send a byte every 50 ms, each well inside any read timeout, until done or the client goes."""
    for byte in data:
        if handler.server.owner.stopping.wait(0.05):
            return
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            return
        owner = handler.server.owner
        with owner.lock:
            owner.dripped += 1


def drip_body(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.flush()
    drip(handler, b"x" * 1000)


def drip_headers(handler: Handler) -> None:
    drip(handler, b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Padding: " + b"p" * 200 + b"\r\n\r\n")


@pytest.mark.parametrize("route", [drip_body, drip_headers], ids=["slow body", "slow headers"])
def test_total_timeout_holds_against_a_slow_server(serve: ServerFactory, route: Route) -> None:
    server = serve()
    server.routes["/slow.png"] = route
    alarms = HandAlarms()
    outcome: list[BaseException] = []
    # The clock stands still and the alarm rings when the test says: nothing else can end the transfer.
    fetcher = SafeFetcher(
        policy(total_timeout_s=0.5), resolver=stand_in_resolver(), clock=HandClock(), alarm=alarms
    )

    def fetch() -> None:
        try:
            fetcher.get(server.url("/slow.png", host="images.example"), field=FIELD)
        except BaseException as error:
            outcome.append(error)

    with fetcher:
        transfer = threading.Thread(target=fetch)
        transfer.start()
        wait_for(lambda: server.dripped >= 5, 10, "the first bytes")
        # Each byte arrives within the read timeout, so the transfer goes on until the deadline.
        assert transfer.is_alive()
        assert outcome == []
        (alarm,) = alarms.made
        assert alarm.seconds == 0.5
        alarm.ring()
        transfer.join(10)
        assert not transfer.is_alive(), "the alarm must wake a read blocked on the slow server"
    (failed,) = outcome
    assert isinstance(failed, FetchFailed)
    assert failed.message == f"{FIELD} did not finish downloading within 0.5 s"
    assert alarm.canceled


def test_the_total_timeout_rings_on_its_own(serve: ServerFactory) -> None:
    server = serve()
    server.routes["/slow.png"] = drip_headers
    # The real clock and alarm: headers a byte at a time, each within the read timeout, are cut off.
    fetcher = SafeFetcher(policy(total_timeout_s=0.5), resolver=stand_in_resolver())
    with fetcher, pytest.raises(FetchFailed) as failed:
        fetcher.get(server.url("/slow.png", host="images.example"), field=FIELD)
    assert failed.value.message == f"{FIELD} did not finish downloading within 0.5 s"


def test_connection_refused_fails(serve: ServerFactory) -> None:
    port = unused_port(PUBLIC_STAND_IN)
    with SafeFetcher(policy(), resolver=stand_in_resolver()) as fetcher, pytest.raises(FetchFailed) as failed:
        fetcher.get(f"http://images.example:{port}/cat.png", field=FIELD)
    assert failed.value.message == f"{FIELD} could not be reached: the connection was refused"


def test_next_checked_address_is_tried_when_one_refuses(serve: ServerFactory) -> None:
    server = serve()
    server.routes["/cat.png"] = serve_png
    trusted = (ip_network("127.0.0.2/32"), ip_network("127.0.0.3/32"))
    resolver = FakeResolver({"images.example": ["127.0.0.3", PUBLIC_STAND_IN]})
    with SafeFetcher(policy(trusted_networks=trusted), resolver=resolver) as fetcher:
        assert fetcher.get(server.url("/cat.png", host="images.example")).data == PNG


def test_unknown_host_fails() -> None:
    with SafeFetcher(policy(), resolver=FakeResolver({})) as fetcher, pytest.raises(FetchFailed) as failed:
        fetcher.get("http://nowhere.example/cat.png", field="fileUrl")
    assert failed.value.message == "fileUrl could not be reached: the host nowhere.example was not found"


def test_compressed_bodies_are_refused(serve: ServerFactory) -> None:
    server = serve()
    server.routes["/cat.png"] = answer(200, b"\x1f\x8b rest", {"Content-Encoding": "gzip"})
    with SafeFetcher(policy(), resolver=stand_in_resolver()) as fetcher, pytest.raises(FetchFailed) as failed:
        fetcher.get(server.url("/cat.png", host="images.example"), field=FIELD)
    assert failed.value.message == f"{FIELD} could not be downloaded: the server sent it compressed (gzip)"


def redirect_chain(server: LoopbackServer, length: int) -> None:
    """/hop/N redirects to /hop/N-1, with each redirect status in turn; /hop/0 is the image."""
    statuses = [301, 302, 303, 307, 308]
    for hop in range(1, length + 1):
        status = statuses[hop % len(statuses)]
        # Alternate relative and absolute locations, across two names for the same server.
        target = f"/hop/{hop - 1}" if hop % 2 else server.url(f"/hop/{hop - 1}", host="cdn.example")
        server.routes[f"/hop/{hop}"] = answer(status, b"", {"Location": target})
    server.routes["/hop/0"] = serve_png


def test_three_redirects_are_followed(serve: ServerFactory) -> None:
    server = serve()
    redirect_chain(server, 4)
    resolver = stand_in_resolver("images.example", "cdn.example")
    with SafeFetcher(policy(), resolver=resolver) as fetcher:
        body = fetcher.get(server.url("/hop/3", host="images.example"), field=FIELD)
    assert body.data == PNG
    assert body.final_url == server.url("/hop/0", host="cdn.example")
    assert [seen.path for seen in server.seen] == ["/hop/3", "/hop/2", "/hop/1", "/hop/0"]
    assert [seen.headers["Host"].partition(":")[0] for seen in server.seen] == [
        "images.example",
        "images.example",
        "cdn.example",
        "cdn.example",
    ]
    # Every hop was looked up and checked again.
    assert resolver.asked == ["images.example", "images.example", "cdn.example", "cdn.example"]


def test_a_fourth_redirect_is_refused(serve: ServerFactory) -> None:
    server = serve()
    redirect_chain(server, 4)
    resolver = stand_in_resolver("images.example", "cdn.example")
    with SafeFetcher(policy(), resolver=resolver) as fetcher, pytest.raises(FetchFailed) as failed:
        fetcher.get(server.url("/hop/4", host="images.example"), field=FIELD)
    assert failed.value.message == f"{FIELD} could not be downloaded: it redirects more than 3 times"
    assert [seen.path for seen in server.seen] == ["/hop/4", "/hop/3", "/hop/2", "/hop/1"]


def test_max_redirects_zero_follows_none(serve: ServerFactory) -> None:
    server = serve()
    redirect_chain(server, 1)
    fetcher = SafeFetcher(policy(max_redirects=0), resolver=stand_in_resolver())
    with fetcher, pytest.raises(FetchFailed, match="redirects more than 0 times"):
        fetcher.get(server.url("/hop/1", host="images.example"))


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://127.0.0.1:{port}/secret", "redirects to a private or reserved address (127.0.0.1)"),
        ("http://2130706433:{port}/secret", "redirects to a private or reserved address (127.0.0.1)"),
        ("http://[::ffff:127.0.0.1]:{port}/secret", "redirects to a private or reserved address (::ffff:"),
        ("http://internal.example:{port}/secret", "redirects to a private or reserved address (127.0.0.1)"),
        ("http://169.254.169.254/latest/meta-data/", "redirects to a private or reserved address (169.254"),
        ("file:///etc/passwd", "redirects to a URL that is not http or https"),
        (
            "http://admin:admin@images.example:{port}/secret",
            "redirects to a URL with a user name or password",
        ),
    ],
)
def test_redirects_to_refused_targets_are_not_followed(
    public_and_internal: tuple[LoopbackServer, LoopbackServer], location: str, message: str
) -> None:
    public, internal = public_and_internal
    public.routes["/go"] = answer(302, b"", {"Location": location.format(port=public.port)})
    resolver = FakeResolver({"images.example": [PUBLIC_STAND_IN], "internal.example": [INTERNAL]})
    with SafeFetcher(policy(), resolver=resolver) as fetcher, pytest.raises(FetchRefused) as refused:
        fetcher.get(public.url("/go", host="images.example"), field=FIELD)
    assert refused.value.message.startswith(f"{FIELD} {message}")
    assert [seen.path for seen in public.seen] == ["/go"]
    assert internal.seen == []


class RebindingDns:
    """The system resolver, except that one name answers differently from one lookup to the next."""

    def __init__(self, name: str, answers: list[str]) -> None:
        self.name = name
        self.answers = answers
        self.lookups = 0
        self._real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == self.name:
            host = self.answers[min(self.lookups, len(self.answers) - 1)]
            self.lookups += 1
        return self._real(host, port, *args, **kwargs)


def test_dns_rebinding_cannot_redirect_the_connection(
    public_and_internal: tuple[LoopbackServer, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    public, internal = public_and_internal
    public.routes["/cat.png"] = serve_png
    # The system resolver itself answers the stand-in public address first and loopback after. Any
    # second lookup, by this code or by the HTTP client connecting by name, would land on internal.
    dns = RebindingDns("rebind.example", [PUBLIC_STAND_IN, INTERNAL])
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    with SafeFetcher(policy()) as fetcher:
        body = fetcher.get(public.url("/cat.png", host="rebind.example"), field=FIELD)
    assert body.data == PNG
    assert dns.lookups == 1
    assert [seen.headers["Host"] for seen in public.seen] == [f"rebind.example:{public.port}"]
    assert internal.seen == []


def test_dns_rebinding_on_a_redirect_is_refused(
    public_and_internal: tuple[LoopbackServer, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    public, internal = public_and_internal
    public.routes["/go"] = answer(302, b"", {"Location": "/secret"})
    dns = RebindingDns("rebind.example", [PUBLIC_STAND_IN, INTERNAL])
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    with SafeFetcher(policy()) as fetcher, pytest.raises(FetchRefused) as refused:
        fetcher.get(public.url("/go", host="rebind.example"), field=FIELD)
    assert refused.value.message == f"{FIELD} redirects to a private or reserved address (127.0.0.1)"
    assert dns.lookups == 2
    assert [seen.path for seen in public.seen] == ["/go"]
    assert internal.seen == []


def test_post_returns_a_redirect_without_following_it(
    public_and_internal: tuple[LoopbackServer, LoopbackServer],
) -> None:
    public, internal = public_and_internal
    clock = HandClock()

    def hook(handler: Handler) -> None:
        clock.advance(0.25)  # a receiver that takes its time, for the latency
        handler.reply(302, b"moved", {"Location": internal.url("/secret")})

    public.routes["/hook"] = hook
    with SafeFetcher(policy(), resolver=stand_in_resolver("hooks.example"), clock=clock) as fetcher:
        outcome = fetcher.post(
            public.url("/hook?task=1", host="hooks.example"),
            content=b'{"code":200}',
            headers={"Content-Type": "application/json", "webhook-id": "msg_1", "host": "evil.example"},
            timeout_s=2.0,
        )
    # The latency runs from sending the request to the answer's headers.
    assert outcome == PostOutcome(status=302, latency_ms=250, location=internal.url("/secret"))
    (seen,) = public.seen
    assert (seen.method, seen.path, seen.body) == ("POST", "/hook?task=1", b'{"code":200}')
    assert seen.headers["webhook-id"] == "msg_1"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Host"] == f"hooks.example:{public.port}", (
        "the caller cannot override the checked host"
    )
    assert internal.seen == []


def test_post_reports_error_statuses_as_answers(serve: ServerFactory) -> None:
    server = serve()
    server.routes["/hook"] = answer(500, b"oops")
    with SafeFetcher(policy(), resolver=stand_in_resolver("hooks.example")) as fetcher:
        outcome = fetcher.post(
            server.url("/hook", host="hooks.example"), content=b"{}", headers={}, timeout_s=2
        )
    assert (outcome.status, outcome.location) == (500, None)


def test_post_to_a_refused_address_never_connects(serve: ServerFactory) -> None:
    internal = serve(INTERNAL)
    with SafeFetcher(policy()) as fetcher, pytest.raises(FetchRefused) as refused:
        fetcher.post(internal.url("/hook"), content=b"{}", headers={}, timeout_s=2)
    assert refused.value.message == "callBackUrl points to a private or reserved address (127.0.0.1)"
    assert internal.seen == []


def test_post_failures_raise_fetch_failed(serve: ServerFactory) -> None:
    server = serve()
    server.routes["/stall"] = stall
    closed_port = unused_port(PUBLIC_STAND_IN)
    with SafeFetcher(policy(), resolver=stand_in_resolver("hooks.example")) as fetcher:
        with pytest.raises(FetchFailed) as refused:
            fetcher.post(f"http://hooks.example:{closed_port}/", content=b"{}", headers={}, timeout_s=2)
        assert refused.value.message == "callBackUrl could not be reached: the connection was refused"
        with pytest.raises(FetchFailed) as timed_out:
            fetcher.post(
                server.url("/stall", host="hooks.example"),
                content=b"{}",
                headers={},
                timeout_s=0.3,
                field="notify.url",
            )
    # Timed out, not waited out: a server that gives up first would read "the connection broke off".
    assert timed_out.value.message == "notify.url did not answer within 0.3 s"


def test_one_fetcher_serves_many_threads(serve: ServerFactory) -> None:
    server = serve()
    for index in range(8):
        server.routes[f"/{index}.png"] = answer(200, PNG + bytes([index]))
    with SafeFetcher(policy(), resolver=stand_in_resolver()) as fetcher, ThreadPoolExecutor(8) as pool:
        urls = [server.url(f"/{index % 8}.png", host="images.example") for index in range(32)]
        bodies = list(pool.map(lambda url: fetcher.get(url).data, urls))
    assert bodies == [PNG + bytes([index % 8]) for index in range(32)]
    assert len(server.seen) == 32


@dataclass(frozen=True)
class Certificates:
    ca: Path
    chain: Path
    key: Path


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA and a certificate it issued for images.example (and nothing else)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make test certificates")
    folder = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_extensions = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]
    ca_subject = ["-subj", "/CN=Kinema test CA", *(f for e in ca_extensions for f in ("-addext", e))]
    run("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", *ca_subject)
    run("req", *curve, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=images.example")
    (folder / "leaf.ext").write_text(
        "subjectAltName=DNS:images.example\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    signing = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "leaf.ext"]
    run("x509", "-req", "-in", "leaf.csr", "-out", "leaf.pem", *signing)
    return Certificates(ca=folder / "ca.pem", chain=folder / "leaf.pem", key=folder / "leaf.key")


def test_https_names_the_host_for_sni_and_the_certificate(
    serve: ServerFactory, certificates: Certificates
) -> None:
    server_names: list[str | None] = []
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificates.chain, certificates.key)
    server_tls.sni_callback = lambda _socket, name, _context: server_names.append(name)
    server = serve(tls=server_tls)
    server.routes["/cat.png"] = serve_png
    client_tls = ssl.create_default_context(cafile=str(certificates.ca))
    transport = httpx.HTTPTransport(
        verify=client_tls, retries=0, limits=httpx.Limits(max_keepalive_connections=0)
    )
    resolver = stand_in_resolver("images.example", "other.example")
    with SafeFetcher(policy(), resolver=resolver, transport=transport) as fetcher:
        body = fetcher.get(server.url("/cat.png", host="images.example", scheme="https"), field=FIELD)
        assert body.data == PNG
        # Same address, another name: the certificate is checked against the name, not the address.
        with pytest.raises(FetchFailed) as failed:
            fetcher.get(server.url("/cat.png", host="other.example", scheme="https"), field=FIELD)
    assert server_names[0] == "images.example"
    assert server_names[1] == "other.example"
    assert failed.value.message.startswith(
        f"{FIELD} could not be reached: the server's TLS certificate was refused"
    )
    assert "other.example" in failed.value.message
    assert [seen.headers["Host"] for seen in server.seen] == [f"images.example:{server.port}"]
