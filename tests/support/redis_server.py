"""The Redis the tests use, named by ``KINEMA_TEST_REDIS_URL`` (``.ci/run`` sets it)."""

from __future__ import annotations

import os

import pytest

REDIS_ENV = "KINEMA_TEST_REDIS_URL"


def redis_url() -> str:
    """The test Redis's URL; the calling test is skipped, with the reason, when none is set."""
    url = os.environ.get(REDIS_ENV, "")
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV} (for example redis://127.0.0.1:6379/15)")
    return url
