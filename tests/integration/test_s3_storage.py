"""What the S3 store does beyond the port's contract: parts, batches, prefixes, its links, outages."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from tests.support.s3_server import S3Server, unreachable_endpoint

from kinema.domain.errors import Unavailable
from kinema.storage.s3 import MIB, S3BlobStore
from kinema.storage.signing import LinkCheck

KEY = "results/acct/task/1/video.mp4"


def test_a_large_result_goes_up_in_parts_and_reads_back_whole(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    store = S3BlobStore(s3.options(bucket, multipart_threshold_bytes=5 * MIB), tmp_path / "staging")
    content = os.urandom(17 * MIB)  # two parts of 16 MB at most
    with store.staging() as folder:
        (folder / "video.mp4").write_bytes(content)
        info = store.put_file(KEY, folder / "video.mp4")
    assert info.size == len(content)
    assert info.etag.endswith('-2"'), info.etag  # S3's ETag of an upload in two parts
    head = s3.client().head_object(Bucket=bucket, Key=KEY)
    assert head["ContentType"] == "video/mp4"
    with store.open_read(KEY) as stream:
        stream.seek(16 * MIB - 3)
        assert stream.read(6) == content[16 * MIB - 3 : 16 * MIB + 3]  # across the parts
        stream.seek(0)
        assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(content).digest()


def test_a_small_file_is_one_put_with_its_type(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    store = S3BlobStore(s3.options(bucket), tmp_path / "staging")
    info = store.put_bytes("uploads/acct/r/cat.png", b"\x89PNG...")
    assert not info.etag.endswith('-1"')
    assert s3.client().head_object(Bucket=bucket, Key="uploads/acct/r/cat.png")["ContentType"] == "image/png"
    store.put_bytes("uploads/acct/r/page.html", b"<script>")
    head = s3.client().head_object(Bucket=bucket, Key="uploads/acct/r/page.html")
    assert head["ContentType"] == "application/octet-stream"


def test_delete_prefix_goes_through_every_page_of_the_listing(s3: S3Server, tmp_path: Path) -> None:
    store = S3BlobStore(s3.options(s3.new_bucket()), tmp_path / "staging")
    store.delete_batch = 2  # S3's is 1000: the same loop, with fewer files
    for number in range(5):
        store.put_bytes(f"results/a/t/{number}.jpg", b"x")
    store.put_bytes("results/a/t0/keep.jpg", b"x")
    assert store.delete_prefix("results/a/t") == 5
    assert store.stat("results/a/t/4.jpg") is None
    assert store.stat("results/a/t0/keep.jpg") is not None


def test_a_prefix_keeps_stores_apart_in_one_bucket(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    ours = S3BlobStore(s3.options(bucket, prefix="kinema"), tmp_path / "a")
    theirs = S3BlobStore(s3.options(bucket, prefix="other/"), tmp_path / "b")
    ours.put_bytes(KEY, b"ours")
    theirs.put_bytes(KEY, b"theirs")
    assert s3.keys(bucket) == [f"kinema/{KEY}", f"other/{KEY}"]
    assert ours.delete_prefix("results") == 1
    with theirs.open_read(KEY) as stream:
        assert stream.read() == b"theirs"


def test_a_reader_opened_before_a_replacement_refuses_to_read_the_new_file(
    s3: S3Server, tmp_path: Path
) -> None:
    store = S3BlobStore(s3.options(s3.new_bucket()), tmp_path / "staging")
    store.put_bytes(KEY, b"old")
    with store.open_read(KEY) as stream:
        store.put_bytes(KEY, b"new")
        with pytest.raises(OSError, match="changed while it was read"):
            stream.read()


def test_presigned_links_name_their_key_and_the_bucket_reads_them(s3: S3Server, tmp_path: Path) -> None:
    store = S3BlobStore(s3.options(s3.new_bucket(), prefix="kinema/"), tmp_path / "staging")
    key = "uploads/acct/photos 2026/été.jpg"
    store.put_bytes(key, b"jpeg bytes")
    link = store.presigned_url(key, expires_at=2**31)
    assert link.startswith(s3.endpoint_url + "/")
    assert "X-Amz-Signature=" in link
    assert "X-Amz-Expires=604800" in link  # a week at most, S3's limit
    assert httpx.get(link).content == b"jpeg bytes"
    assert store.key_of(link) == key
    assert store.read_link(link) == (LinkCheck.VALID, b"jpeg bytes")

    assert store.key_of(link.replace("127.0.0.1", "localhost")) is None
    assert store.key_of(link.split("?")[0]) is None  # not presigned
    assert store.key_of("https://example.com/kinema/uploads/acct/x.jpg?X-Amz-Signature=1") is None
    gone = store.presigned_url("uploads/acct/gone.jpg", expires_at=2**31)
    assert store.read_link(gone) == (LinkCheck.VALID, None)


def _down(s3: S3Server, tmp_path: Path) -> S3BlobStore:
    return S3BlobStore(s3.options("kinema-down", endpoint_url=unreachable_endpoint()), tmp_path / "staging")


def test_an_unreachable_s3_is_unavailable_for_every_call(s3: S3Server, tmp_path: Path) -> None:
    store = _down(s3, tmp_path)
    source = tmp_path / "video.mp4"
    source.write_bytes(b"x")
    calls = [
        lambda: store.put_bytes(KEY, b"x"),
        lambda: store.put_file(KEY, source),
        lambda: store.open_read(KEY),
        lambda: store.stat(KEY),
        lambda: store.delete(KEY),
        lambda: store.delete_prefix("results"),
    ]
    for call in calls:
        with pytest.raises(Unavailable, match="the file storage cannot be reached") as raised:
            call()
        assert raised.value.code == 503
    assert source.exists()  # nothing was stored, so nothing was moved


def test_a_missing_bucket_is_unavailable_and_says_so(s3: S3Server, tmp_path: Path) -> None:
    store = S3BlobStore(s3.options("kinema-no-such-bucket"), tmp_path / "staging")
    source = tmp_path / "video.mp4"
    source.write_bytes(b"x")
    with pytest.raises(Unavailable, match="bucket does not exist"):
        store.put_bytes(KEY, b"x")
    with pytest.raises(Unavailable, match="bucket does not exist"):
        store.put_file(KEY, source)
    with pytest.raises(Unavailable, match="bucket does not exist"):
        store.delete_prefix("results")
