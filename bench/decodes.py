"""Memory of image checks under a burst: `DecodeSlots` against decoding every image at once.

Each side runs in a process of its own: bursts of threads each checking a 49-megapixel PNG
(a few hundred kilobytes to send) as createTask checks an image of this server. The baseline
calls `check_image` from every thread at once, as createTask did before its decodes took
turns; Kinema goes through `DecodeSlots` (2 at once, memory given back after each). RSS is
sampled every 20 ms: the peak, and what is left once each burst is over. Run with
``python -m bench.decodes``; figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import threading
from collections.abc import Callable

import cv2
import numpy as np

from kinema.media.intake import AcceptanceRules, DecodeSlots, check_image

SIDE = 7000  #: 49 megapixels, under the 50-megapixel cap
RULES = AcceptanceRules(max_bytes=50 * 1024 * 1024)


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def _image() -> bytes:
    picture = np.zeros((SIDE, SIDE, 3), np.uint8)
    picture[::7] = 200
    ok, encoded = cv2.imencode(".png", picture)
    assert ok
    return encoded.tobytes()


def _side(kind: str, bursts: int, threads: int) -> dict[str, object]:
    data = _image()
    slots = DecodeSlots(2)
    check: Callable[[], object] = (
        (lambda: slots.check_image(data, RULES)) if kind == "kinema" else (lambda: check_image(data, RULES))
    )
    start = _rss_mib()
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _rss_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    after = []
    for _ in range(bursts):
        workers = [threading.Thread(target=check) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        after.append(round(_rss_mib() - start))
    done.set()
    sampler.join()
    return {"peak": round(peak - start), "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--side", choices=["baseline", "kinema"])
    args = parser.parse_args()
    if args.side:
        print(json.dumps(_side(args.side, args.bursts, args.threads)))
        return
    results = {}
    for side in ("baseline", "kinema"):
        command = [sys.executable, "-m", "bench.decodes", "--side", side]
        command += ["--bursts", str(args.bursts), "--threads", str(args.threads)]
        results[side] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    base, ours = results["baseline"], results["kinema"]
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"{args.bursts} bursts of {args.threads} checks of a {SIDE} x {SIDE} PNG; MiB above the start")
    print(f"baseline (all at once): peak {base['peak']}, after each burst {base['after']}")
    print(f"kinema (2 at once):     peak {ours['peak']}, after each burst {ours['after']}")
    print(f"peak, kinema / baseline: {int(ours['peak']) / max(1, int(base['peak'])):.2f}")


if __name__ == "__main__":
    main()
