"""A real S3-speaking server on loopback for tests: moto's server mode, in a thread.

One server per test process; each test gets a bucket of its own, so tests share nothing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer
from tests.support.live import free_port

from kinema.storage.s3 import S3Options

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
#: Any credentials do for moto; given outright, so that nothing of the machine's AWS set-up is read.
ACCESS_KEY_ID = "kinema-test-key"
SECRET_ACCESS_KEY = "kinema-test-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self) -> S3Client:
        """A plain client, for looking into buckets behind the store's back."""
        client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )
        return client

    def new_bucket(self) -> str:
        name = f"kinema-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def options(self, bucket: str, **overrides: Any) -> S3Options:
        values: dict[str, Any] = {
            "bucket": bucket,
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "path_style": True,
            "max_attempts": 1,
        }
        return S3Options(**(values | overrides))

    def settings(self, bucket: str, **overrides: Any) -> dict[str, Any]:
        """Settings (as keyword arguments) that keep the service's files in `bucket`."""
        return {
            "storage": "s3",
            "s3_bucket": bucket,
            "s3_endpoint_url": self.endpoint_url,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY_ID,
            "s3_secret_access_key": SECRET_ACCESS_KEY,
            "s3_path_style": True,
            "s3_max_attempts": 1,
        } | overrides

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object's key in `bucket` under `prefix`, sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Moto's S3 on a free loopback port until the block ends."""
    # Its HTTP server logs every request; the tests look at answers, not at that log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


def unreachable_endpoint() -> str:
    """An address on loopback where nothing listens: an S3 that is down."""
    return f"http://127.0.0.1:{free_port()}"
