"""The access log of `kinema serve`: what opens a link or an account never reaches it."""

from __future__ import annotations

import logging

import pytest

from kinema.cli.service import RedactedAccessLog, redact_query


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/files/a.mp4?expires=17&signature=abc-_123", "/files/a.mp4?expires=17&signature=[redacted]"),
        ("/files/a.mp4?signature=abc&expires=17", "/files/a.mp4?signature=[redacted]&expires=17"),
        (
            "/api/v1/jobs/recordInfo?taskId=0123&key=kn_secret",
            "/api/v1/jobs/recordInfo?taskId=0123&key=[redacted]",
        ),
        ("/x?SIGNATURE=a&token=b&secret=c", "/x?SIGNATURE=[redacted]&token=[redacted]&secret=[redacted]"),
        ("/api/v1/jobs/recordInfo?taskId=0123", "/api/v1/jobs/recordInfo?taskId=0123"),
        ("/files/signature=kept-in-a-path", "/files/signature=kept-in-a-path"),
    ],
)
def test_query_values_that_open_something_are_redacted(path: str, shown: str) -> None:
    assert redact_query(path) == shown


def test_the_filter_rewrites_uvicorns_access_record() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/files/a.mp4?expires=1&signature=s3cret", "1.1", 200),
        None,
    )
    assert RedactedAccessLog().filter(record)
    assert (
        record.getMessage()
        == '127.0.0.1:5000 - "GET /files/a.mp4?expires=1&signature=[redacted] HTTP/1.1" 200'
    )
