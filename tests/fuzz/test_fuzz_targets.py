"""The fuzz targets of `make fuzz`, on their seeds: each handles every one as designed.

So that a change elsewhere (a renamed function, a test list that moved) shows here, in the
test run, rather than as a fuzzer that cannot start.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from fuzz import image_intake, prompt_plan, url_rules


@pytest.mark.parametrize("target", [image_intake, prompt_plan, url_rules], ids=lambda target: target.__name__)
def test_each_fuzz_target_takes_its_seeds(target: ModuleType) -> None:
    seeds = target.seeds()
    assert len(seeds) >= 10
    for seed in seeds:
        target.fuzz_one(seed)


@pytest.mark.parametrize(
    "data",
    [
        b"\x06http://images.example/\xff.png",  # a lone surrogate once the bytes are read as text
        b"\x06http://[fe80::1%25et\xc3\xa9]/",  # an IPv6 zone index outside ASCII
    ],
    ids=["lone surrogate", "zone index not in ASCII"],
)
def test_the_urls_the_fuzzer_found_are_refused(data: bytes) -> None:
    url_rules.fuzz_one(data)


def test_a_target_fails_on_an_outcome_it_does_not_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("not a refusal")

    monkeypatch.setattr(url_rules, "check_url", broken)
    with pytest.raises(KeyError):
        url_rules.fuzz_one(b"\x00http://images.example/")
