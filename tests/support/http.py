"""Real HTTP servers on loopback: image hosts for task inputs, a callback receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on a free loopback port, for the block: its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class ImageHost:
    """Serves fixed bytes by path; `requests` lists the paths asked for."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    base_url: str = ""

    def add(self, path: str, data: bytes, content_type: str = "image/jpeg") -> str:
        self.files[path] = (data, content_type)
        return self.base_url + path


@contextmanager
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host.requests.append(self.path)
            found = host.files.get(self.path)
            if found is None:
                self.send_error(404)
                return
            data, content_type = found
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    with loopback(Handler) as base_url:
        host.base_url = base_url
        yield host


@dataclass
class Received:
    """One request a receiver got."""

    headers: dict[str, str]
    body: bytes


@dataclass
class CallbackReceiver:
    """Answers each callback with the next scripted behaviour, then 200 for ever.

    A behaviour is an HTTP status, or ``"hang"``: hold the request until the receiver closes
    (longer than any test's callback timeout), as a stuck receiver would.
    """

    script: list[int | str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    closing: threading.Event = field(default_factory=threading.Event)

    def accepted(self) -> list[Received]:
        return [
            request for request, answer in zip(self.received, self._answers, strict=False) if answer == 200
        ]

    _answers: list[int | str] = field(default_factory=list)


@contextmanager
def callback_receiver(script: list[int | str] | None = None) -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver(script=list(script or []))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                behaviour = receiver.script.pop(0) if receiver.script else 200
                receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                receiver._answers.append(behaviour)
            if behaviour == "hang":
                receiver.closing.wait(30)
                return
            status = int(behaviour)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    with loopback(Handler) as base_url:
        receiver.url = f"{base_url}/hooks/kinema"
        try:
            yield receiver
        finally:
            receiver.closing.set()


@dataclass
class TricklingHost:
    """Serves one image a byte at a time as a slow host would: the first byte at once, the rest
    only once the test lets go (`release`), so every fetch from it stays in flight until then."""

    data: bytes
    content_type: str = "image/png"
    url: str = ""
    released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started: int = 0
    _held: int = 0
    most_held: int = 0

    @property
    def started(self) -> int:
        """Fetches that have begun, at their first byte."""
        with self._lock:
            return self._started

    @property
    def held(self) -> int:
        """Fetches waiting now for the rest of the image."""
        with self._lock:
            return self._held

    def release(self) -> None:
        self.released.set()

    def _begin(self) -> None:
        with self._lock:
            self._started += 1
            self._held += 1
            self.most_held = max(self.most_held, self._held)

    def _end(self) -> None:
        with self._lock:
            self._held -= 1


@contextmanager
def trickling_host(data: bytes, content_type: str = "image/png") -> Iterator[TricklingHost]:
    """A `TricklingHost` on loopback; released when the block ends, so that nothing hangs."""
    host = TricklingHost(data, content_type)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", host.content_type)
            self.send_header("Content-Length", str(len(host.data)))
            self.end_headers()
            self.wfile.write(host.data[:1])
            self.wfile.flush()
            host._begin()
            try:
                host.released.wait(60)
                self.wfile.write(host.data[1:])
            finally:
                host._end()

        def log_message(self, *_args: object) -> None:
            pass

    with loopback(Handler) as base_url:
        host.url = f"{base_url}/slow.png"
        try:
            yield host
        finally:
            host.release()
