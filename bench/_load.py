"""A small HTTP/1.1 load generator on asyncio and httpx, for machines without ``wrk``.

Run in its own process by `bench.api`: ``python -m bench._load SPEC`` where SPEC is a JSON
object (url, method, body, headers, connections, warmup_s, duration_s). It keeps
`connections` keep-alive connections busy, each sending its next request as soon as the last
one is answered, and prints one JSON line: requests answered in the measured window, their
latencies, and how many failed or did not answer ``{"code":200,...}``. Requests started during
the warm-up are not counted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

OK_PREFIX = b'{"code":200,'


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    connections = int(spec["connections"])
    body = spec["body"].encode() if spec.get("body") is not None else None
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    failures = {"errors": 0, "bad": 0}
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        measure_from = time.perf_counter() + float(spec["warmup_s"])
        stop = measure_from + float(spec["duration_s"])

        async def connection() -> None:
            while (started := time.perf_counter()) < stop:
                try:
                    response = await client.request(
                        spec["method"], spec["url"], content=body, headers=spec["headers"]
                    )
                except httpx.HTTPError:
                    failures["errors"] += started >= measure_from
                    continue
                if started < measure_from:
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or not response.content.startswith(OK_PREFIX):
                    failures["bad"] += 1

        await asyncio.gather(*(connection() for _ in range(connections)))
    latencies.sort()

    def percentile(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] if latencies else 0.0

    return {
        "requests": len(latencies),
        "seconds": float(spec["duration_s"]),
        "p50_us": percentile(0.50) * 1e6,
        "p99_us": percentile(0.99) * 1e6,
        **failures,
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
