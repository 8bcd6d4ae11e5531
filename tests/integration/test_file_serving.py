"""``/files/{key}`` over HTTP: signed links, ranges, conditional requests, and what is refused."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from kinema.api.files import CHUNK_SIZE, files_router
from kinema.storage.base import BlobInfo
from kinema.storage.local import LocalBlobStore
from kinema.storage.signing import LinkSigner

BASE = "https://kinema.example"
KEY = "results/acct/task/video.mp4"
CONTENT = bytes(range(256)) * 40 + b"tail"  # 10244 bytes, every offset recognisable
SIZE = len(CONTENT)
NOW = 1_700_000_000
EXPIRES = NOW + 600
SIGNER = LinkSigner(b"serving-test-secret-0123456789ab")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    store = LocalBlobStore(tmp_path / "root")
    store.put_bytes(KEY, CONTENT)
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW + 0.9)


class CurrentApp:
    """The one ASGI app the loopback server runs; each test puts its own app behind it."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[CurrentApp, str]]:
    """A real uvicorn server on loopback, so that its URL decoding is the one under test."""
    current = CurrentApp()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(current, lifespan="off", ws="none", log_level="warning", access_log=False)
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not runner.started:
            assert thread.is_alive(), "the server stopped while starting"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield current, f"http://127.0.0.1:{port}"
    finally:
        runner.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture
def client(server: tuple[CurrentApp, str], store: LocalBlobStore, clock: Clock) -> Iterator[httpx.Client]:
    current, url = server
    app = FastAPI()
    app.include_router(files_router(store, SIGNER, clock))
    current.app = app
    try:
        with httpx.Client(base_url=url) as client:
            yield client
    finally:
        current.app = None


def link(key: str = KEY, expires_at: int = EXPIRES) -> str:
    """A signed link, as a path and query, so that any base URL serves it."""
    return SIGNER.signed_url(BASE, key, expires_at).removeprefix(BASE)


def info_of(store: LocalBlobStore, key: str = KEY) -> BlobInfo:
    info = store.stat(key)
    assert info is not None
    return info


def test_a_valid_link_serves_the_file_with_its_headers(client: httpx.Client, store: LocalBlobStore) -> None:
    response = client.get(link())
    assert response.status_code == 200
    assert response.content == CONTENT
    info = info_of(store)
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["etag"] == info.etag
    assert response.headers["last-modified"] == formatdate(info.modified_at, usegmt=True)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["cache-control"] == "private, max-age=600"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-range" not in response.headers


def test_head_sends_the_headers_without_the_body(client: httpx.Client) -> None:
    response = client.head(link())
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=10000-", 10000, SIZE),
        ("bytes=-7", SIZE - 7, SIZE),
        ("bytes=0-0", 0, 1),
        ("bytes=10240-999999", 10240, SIZE),
        ("bytes=-999999", 0, SIZE),
        ("Bytes=5-6", 5, 7),
    ],
)
def test_a_single_range_answers_206_with_exactly_those_bytes(
    client: httpx.Client, header: str, start: int, stop: int
) -> None:
    response = client.get(link(), headers={"Range": header})
    assert response.status_code == 206
    assert response.content == CONTENT[start:stop]
    assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert response.headers["content-length"] == str(stop - start)
    assert response.headers["content-type"] == "video/mp4"


def test_head_with_a_range_answers_206_headers(client: httpx.Client) -> None:
    response = client.head(link(), headers={"Range": "bytes=-7"})
    assert response.status_code == 206
    assert response.content == b""
    assert response.headers["content-range"] == f"bytes {SIZE - 7}-{SIZE - 1}/{SIZE}"
    assert response.headers["content-length"] == "7"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0"])
def test_an_unsatisfiable_range_answers_416(client: httpx.Client, header: str) -> None:
    response = client.get(link(), headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert response.json()["code"] == 416
    assert CONTENT[:16] not in response.content


@pytest.mark.parametrize(
    "header", ["bytes=0-1,5-6", "bytes=5-2", "items=0-1", "bytes=-", "bytes=a-b", "bytes=" + "9" * 5000 + "-"]
)
def test_several_or_unreadable_ranges_get_the_whole_file(client: httpx.Client, header: str) -> None:
    response = client.get(link(), headers={"Range": header})
    assert response.status_code == 200
    assert response.content == CONTENT


def test_if_range_honours_the_range_only_for_this_version(
    client: httpx.Client, store: LocalBlobStore
) -> None:
    info = info_of(store)
    same = client.get(link(), headers={"Range": "bytes=0-3", "If-Range": info.etag})
    assert same.status_code == 206
    assert same.content == CONTENT[:4]
    changed = client.get(link(), headers={"Range": "bytes=0-3", "If-Range": '"an-older-version"'})
    assert changed.status_code == 200
    assert changed.content == CONTENT


def test_a_big_file_streams_across_chunks(client: httpx.Client, store: LocalBlobStore) -> None:
    big = bytes(range(251)) * (3 * CHUNK_SIZE // 251 + 7)
    store.put_bytes("results/acct/task/big.mp4", big)
    whole = client.get(link("results/acct/task/big.mp4"))
    assert whole.content == big
    start, stop = CHUNK_SIZE - 5, 2 * CHUNK_SIZE + 5
    part = client.get(link("results/acct/task/big.mp4"), headers={"Range": f"bytes={start}-{stop - 1}"})
    assert part.status_code == 206
    assert part.content == big[start:stop]


@pytest.mark.parametrize("tag", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_if_none_match_with_the_etag_answers_304(
    client: httpx.Client, store: LocalBlobStore, tag: str
) -> None:
    etag = info_of(store).etag
    response = client.get(link(), headers={"If-None-Match": tag.format(etag=etag)})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "private, max-age=600"


def test_if_none_match_with_another_etag_gets_the_file(client: httpx.Client) -> None:
    response = client.get(link(), headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200
    assert response.content == CONTENT


def test_if_modified_since_answers_304_when_unchanged(client: httpx.Client, store: LocalBlobStore) -> None:
    last_modified = formatdate(info_of(store).modified_at, usegmt=True)
    assert client.get(link(), headers={"If-Modified-Since": last_modified}).status_code == 304
    earlier = formatdate(info_of(store).modified_at - 3600, usegmt=True)
    assert client.get(link(), headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get(link(), headers={"If-Modified-Since": "yesterday"}).status_code == 200


def test_a_re_put_file_does_not_match_the_old_etag(client: httpx.Client, store: LocalBlobStore) -> None:
    old = info_of(store).etag
    store.put_bytes(KEY, CONTENT[::-1])
    response = client.get(link(), headers={"If-None-Match": old})
    assert response.status_code == 200
    assert response.content == CONTENT[::-1]


@pytest.mark.parametrize(
    "url",
    [
        link("results/acct/task/other.mp4").replace("other.mp4", "video.mp4"),
        link(expires_at=EXPIRES + 3600).replace(str(EXPIRES + 3600), str(EXPIRES + 7200)),
        link()[:-3] + ("AAA" if not link().endswith("AAA") else "BBB"),
        f"/files/{KEY}",
        f"/files/{KEY}?expires={EXPIRES}",
        link() + "&signature=again",
        LinkSigner(b"a-different-secret-0123456789abc").signed_url(BASE, KEY, EXPIRES).removeprefix(BASE),
    ],
)
def test_a_tampered_link_answers_403_without_the_file(client: httpx.Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 403
    assert response.json() == {"code": 403, "msg": "The link is not valid"}
    assert CONTENT[:16] not in response.content
    assert "etag" not in response.headers


def test_a_tampered_link_is_refused_even_when_expired(client: httpx.Client, clock: Clock) -> None:
    clock.now = EXPIRES + 100
    url = link().replace("video.mp4", "other.mp4")
    assert client.get(url).status_code == 403


def test_an_expired_link_answers_410(client: httpx.Client, clock: Clock) -> None:
    clock.now = EXPIRES
    response = client.get(link())
    assert response.status_code == 410
    assert response.json() == {"code": 410, "msg": "The link has expired"}
    assert CONTENT[:16] not in response.content


def test_a_link_to_a_deleted_file_answers_410(client: httpx.Client, store: LocalBlobStore) -> None:
    store.delete(KEY)
    for method in ("GET", "HEAD"):
        response = client.request(method, link())
        assert response.status_code == 410
    assert client.get(link()).json() == {"code": 410, "msg": "The file is no longer available"}


def test_a_traversal_with_a_valid_signature_never_leaves_the_root(
    client: httpx.Client, store: LocalBlobStore, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET")
    for key in ("../secret.txt", "../../etc/passwd", "a/../../secret.txt"):
        query = SIGNER.sign(key, EXPIRES)
        response = client.get(f"/files/{quote(key, safe='')}?{query}")
        assert response.status_code == 404, key
        assert response.json() == {"code": 404, "msg": "File not found"}
        assert b"TOP SECRET" not in response.content
        assert b"root:" not in response.content


def test_the_literal_traversal_from_the_brief(client: httpx.Client) -> None:
    query = SIGNER.sign("../../etc/passwd", EXPIRES)
    response = client.get(f"/files/..%2F..%2Fetc%2Fpasswd?{query}")
    assert response.status_code == 404
    assert b"root:" not in response.content


def test_a_symlink_out_of_the_root_is_not_served(
    client: httpx.Client, store: LocalBlobStore, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET")
    (store.root / "results" / "leak.mp4").symlink_to(tmp_path / "secret.txt")
    response = client.get(link("results/leak.mp4"))
    assert response.status_code == 404
    assert b"TOP SECRET" not in response.content


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("still.jpg", "image/jpeg"),
        ("STILL.JPEG", "image/jpeg"),
        ("still.png", "image/png"),
        ("still.webp", "image/webp"),
        ("page.html", "application/octet-stream"),
        ("noext", "application/octet-stream"),
    ],
)
def test_content_type_follows_the_extension(
    client: httpx.Client, store: LocalBlobStore, name: str, media_type: str
) -> None:
    key = f"uploads/acct/{name}"
    store.put_bytes(key, b"data")
    response = client.get(link(key))
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type


def test_a_key_with_spaces_and_unicode_is_served(client: httpx.Client, store: LocalBlobStore) -> None:
    key = "uploads/acct/vidéo finale #1.mp4"
    store.put_bytes(key, b"encoded")
    response = client.get(link(key))
    assert response.status_code == 200
    assert response.content == b"encoded"


def test_cache_lifetime_follows_the_link(client: httpx.Client, clock: Clock) -> None:
    clock.now = EXPIRES - 42.5
    response = client.get(link())
    assert response.headers["cache-control"] == "private, max-age=43"


def test_a_file_deleted_between_stat_and_open_answers_410(
    client: httpx.Client, store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(key: str) -> BinaryIO:
        raise FileNotFoundError(key)

    monkeypatch.setattr(store, "open_read", gone)
    response = client.get(link())
    assert response.status_code == 410
    assert CONTENT[:16] not in response.content
