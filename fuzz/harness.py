"""One fuzz target for a bounded time: coverage-guided by atheris where it installs, Hypothesis elsewhere.

A target is a function of bytes that returns for every input it handles as designed and raises
for any other outcome. Each runs for ``FUZZ_SECONDS`` (30 unless told), from seeds made of the
project's own files and the test suite's cases. What atheris learns is kept in
``out/fuzz/<target>/corpus`` for the next run; a crash is written beside it as ``crash-<hash>``
and replays with ``python -m fuzz.<target> out/fuzz/<target>/crash-<hash>``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from hashlib import sha1
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

try:
    import atheris
except ImportError:  # no wheel for this platform: the targets run on Hypothesis
    atheris = None

Target = Callable[[bytes], None]

OUT = Path("out") / "fuzz"
#: The whole fuzzing process stays under this: a hostile input that makes intake hold gigabytes
#: fails the run. libFuzzer's own bookkeeping grows with a long run (half a gigabyte in two
#: minutes on image intake, where the same inputs run alone stay under 100 MB).
RSS_LIMIT_MB = 2048
#: Any one input taking longer is a hang.
INPUT_TIMEOUT_S = 20


def seconds() -> int:
    return max(1, round(float(os.environ.get("FUZZ_SECONDS", "30"))))


def instrumented(*packages: str) -> contextlib.AbstractContextManager[Any]:
    """Around the imports of the code under test, so that atheris sees which branches an input takes.

    Kinema's own modules always; `packages` names others worth steering by (Pillow's parsers are
    Python, and where a hostile image goes wrong). Only when a target runs as a program
    (``python -m fuzz.<target>``): imported, by the tests, the code runs as it is.
    """
    running_a_target = Path(sys.argv[0]).resolve().parent == Path(__file__).resolve().parent
    if atheris is None or not running_a_target:
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=["kinema", *packages])


def run(name: str, target: Target, seeds: Iterable[bytes]) -> None:
    """Fuzz `target` for `seconds()`; exits non-zero with the input and its traceback on a crash."""
    seed_dir = OUT / name / "seeds"
    corpus = OUT / name / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    seed_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds)
    for seed in seeds:
        (seed_dir / sha1(seed).hexdigest()).write_bytes(seed)
    print(f"fuzz {name}: {len(seeds)} seeds, {seconds()} s", file=sys.stderr, flush=True)
    if atheris is None:
        _run_on_hypothesis(target, seeds)
        return
    replay = sys.argv[1:]
    options = [
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-timeout={INPUT_TIMEOUT_S}",
        f"-artifact_prefix={OUT / name}/",
        "-print_final_stats=1",
    ]
    if not replay:
        options += [f"-max_total_time={seconds()}", str(corpus), str(seed_dir)]
    atheris.Setup([sys.argv[0], *options, *replay], target)
    atheris.Fuzz()


def _run_on_hypothesis(target: Target, seeds: list[bytes]) -> None:
    """The same target without coverage guidance: seeds, mutated seeds and random bytes, in rounds."""
    deadline = time.monotonic() + seconds()

    @given(_inputs(seeds))
    @settings(
        max_examples=500,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def one_round(data: bytes) -> None:
        target(data)

    rounds = 0
    while time.monotonic() < deadline:
        one_round()
        rounds += 1
    print(f"{rounds} rounds of 500 inputs", file=sys.stderr)


def _inputs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 8))):
            if not data:
                break
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        return bytes(data)

    return st.one_of(st.sampled_from(seeds), mutated(), st.binary(max_size=4096)) if seeds else st.binary()
