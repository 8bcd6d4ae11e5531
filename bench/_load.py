"""A small HTTP/1.1 load generator on bare asyncio, for machines without ``wrk``.

Run in its own process by `bench.api`: ``python -m bench._load SPEC`` where SPEC is a JSON
object (url, method, body, headers, connections, warmup_s, duration_s). It keeps
`connections` keep-alive connections busy, each sending its next request as soon as the last
one is answered, and prints one JSON line: requests answered in the measured window, their
latencies, and how many failed or did not answer ``{"code":200,...}``. Requests started during
the warm-up are not counted.

It speaks just enough HTTP/1.1 for these servers (answers with ``Content-Length``) on raw
asyncio protocols, because a general client costs more per request than the servers measured:
httpx's async client, on the same 2-core machine, topped out near 420 requests/s against the
bare app, which answers 8000 to ``wrk``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

OK_PREFIX = b'{"code":200,'


@dataclass
class Tally:
    measure_from: float
    stop: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    bad: int = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection sending the same request again as soon as it is answered."""

    def __init__(self, request: bytes, tally: Tally, finished: asyncio.Future[None]) -> None:
        self.request = request
        self.tally = tally
        self.finished = finished
        self.buffer = b""
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.started = time.perf_counter()
        if self.started >= self.tally.stop:
            self.transport.close()
            return
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.read_answer(data)
        except Exception as error:  # the loop would only log it and this connection would hang
            if not self.finished.done():
                self.finished.set_exception(error)
            assert self.transport is not None
            self.transport.abort()

    def read_answer(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].decode("latin-1").split("\r\n")
        lengths = [line.split(":", 1)[1] for line in head[1:] if line.lower().startswith("content-length:")]
        if not lengths:
            raise RuntimeError(f"an answer without Content-Length: {head[0]}")
        body_end = head_end + 4 + int(lengths[0])
        if len(self.buffer) < body_end:
            return
        body, self.buffer = self.buffer[head_end + 4 : body_end], self.buffer[body_end:]
        if self.started >= self.tally.measure_from:
            self.tally.latencies.append(time.perf_counter() - self.started)
            if head[0].split(" ")[1] != "200" or not body.startswith(OK_PREFIX):
                self.tally.bad += 1
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter() < self.tally.stop:
            self.tally.errors += 1
        if not self.finished.done():
            self.finished.set_result(None)


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    body = spec["body"].encode() if spec.get("body") is not None else b""
    headers = {"Host": url.netloc, "Connection": "keep-alive"} | spec["headers"]
    if body:
        headers["Content-Length"] = str(len(body))
    target = url.path + (f"?{url.query}" if url.query else "")
    lines = [f"{spec['method']} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    loop = asyncio.get_running_loop()
    measure_from = time.perf_counter() + float(spec["warmup_s"])
    tally = Tally(measure_from, measure_from + float(spec["duration_s"]))
    finished = [loop.create_future() for _ in range(int(spec["connections"]))]
    for done in finished:
        await loop.create_connection(
            lambda done=done: Connection(request, tally, done), url.hostname, url.port or 80
        )
    deadline = float(spec["warmup_s"]) + float(spec["duration_s"]) + 60
    await asyncio.wait_for(asyncio.gather(*finished), deadline)

    latencies = sorted(tally.latencies)

    def percentile(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] if latencies else 0.0

    return {
        "requests": len(latencies),
        "seconds": float(spec["duration_s"]),
        "p50_us": percentile(0.50) * 1e6,
        "p99_us": percentile(0.99) * 1e6,
        "errors": tally.errors,
        "bad": tally.bad,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it; plain asyncio works too, only slower
        result = asyncio.run(drive(spec))
    else:
        result = uvloop.run(drive(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
