"""The storage port's contract, run against every store: the local folder and S3 (moto on loopback).

Whatever a store is, the rest of the service relies on the same behaviour from it: a round trip
that keeps bytes and names exact, a seekable reader, folders that are not files, deletion by
folder that stays inside the folder, the key rules, and local staging for producers.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.s3_server import S3Server

from kinema.storage.base import BlobStore, InvalidKey
from kinema.storage.local import LocalBlobStore
from kinema.storage.s3 import S3BlobStore

KEY = "results/acct/task/1/video.mp4"
CONTENT = bytes(range(256)) * 1200 + b"tail"  # 307,204 bytes: more than one read buffer


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "root")
        return
    s3: S3Server = request.getfixturevalue("s3")
    yield S3BlobStore(s3.options(s3.new_bucket(), prefix="kinema/"), staging_root=tmp_path / "staging")


def test_put_open_stat_delete(store: BlobStore) -> None:
    info = store.put_bytes(KEY, b"movie bytes")
    with store.open_read(KEY) as stream:
        assert stream.read() == b"movie bytes"
    assert store.stat(KEY) == info
    assert info.size == 11
    assert info.etag.startswith('"')
    assert info.etag.endswith('"')
    assert info.modified_ns > 0
    assert store.delete(KEY) is True
    assert store.delete(KEY) is False
    assert store.stat(KEY) is None
    with pytest.raises(FileNotFoundError):
        store.open_read(KEY)


def test_names_are_kept_exactly(store: BlobStore) -> None:
    keys = ["uploads/acct/photos 2026/été +1%20.png", "uploads/acct/.cache/a?b#c.jpg", "inputs/a/t/image"]
    for number, key in enumerate(keys):
        store.put_bytes(key, f"file {number}".encode())
    for number, key in enumerate(keys):
        with store.open_read(key) as stream:
            assert stream.read() == f"file {number}".encode()
    assert store.delete_prefix("uploads/acct") == 2
    assert store.stat("inputs/a/t/image") is not None


def test_an_empty_file_is_a_file(store: BlobStore) -> None:
    info = store.put_bytes(KEY, b"")
    assert info.size == 0
    with store.open_read(KEY) as stream:
        assert stream.read() == b""


def test_a_re_put_replaces_and_changes_the_etag(store: BlobStore) -> None:
    first = store.put_bytes(KEY, b"first")
    second = store.put_bytes(KEY, b"secon")
    with store.open_read(KEY) as stream:
        assert stream.read() == b"secon"
    assert first.size == second.size
    assert first.etag != second.etag
    assert store.stat(KEY) == second


def test_the_reader_is_seekable(store: BlobStore) -> None:
    store.put_bytes(KEY, CONTENT)
    with store.open_read(KEY) as stream:
        assert stream.seekable()
        assert stream.read(10) == CONTENT[:10]
        assert stream.tell() == 10
        stream.seek(200_000)
        assert stream.read(1000) == CONTENT[200_000:201_000]
        stream.seek(-4, io.SEEK_END)
        assert stream.read() == b"tail"
        assert stream.read() == b""
        stream.seek(5)
        stream.seek(3, io.SEEK_CUR)
        assert stream.read(4) == CONTENT[8:12]
        stream.seek(0)
        assert stream.read() == CONTENT
        stream.seek(len(CONTENT) + 10)
        assert stream.read(1) == b""


def test_a_reader_never_mixes_two_versions(store: BlobStore) -> None:
    new = bytes(reversed(CONTENT))
    store.put_bytes(KEY, CONTENT)
    with store.open_read(KEY) as stream:
        assert stream.read(100) == CONTENT[:100]
        store.put_bytes(KEY, new)
        stream.seek(250_000)
        try:
            rest = stream.read()
        except OSError:
            # S3 keeps no old version to go back to: a new request says the file changed.
            assert isinstance(store, S3BlobStore)
        else:
            # The old version, whole: a local reader holds the old file open, an S3 reader
            # its request already under way.
            assert rest == CONTENT[250_000:]
    with store.open_read(KEY) as stream:
        assert stream.read() == new


def test_folders_are_not_files(store: BlobStore) -> None:
    store.put_bytes(KEY, b"x")
    assert store.stat("results/acct") is None
    assert store.stat(KEY + "/below") is None
    assert store.delete("results/acct") is False
    with pytest.raises(FileNotFoundError):
        store.open_read("results/acct")


def test_put_file_moves_a_finished_file_in(store: BlobStore) -> None:
    with store.staging() as folder:
        assert folder.is_dir()
        assert list(folder.iterdir()) == []
        video = folder / "video.mp4"
        video.write_bytes(CONTENT)
        (folder / "video.first.jpg").write_bytes(b"still")
        info = store.put_file(KEY, video)
        assert not video.exists()
        assert info.size == len(CONTENT)
        assert store.stat(KEY) == info
    assert not folder.exists()
    with store.open_read(KEY) as stream:
        assert stream.read() == CONTENT


def test_put_file_refuses_a_symlink(store: BlobStore, tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_bytes(b"secret")
    link = tmp_path / "link.mp4"
    link.symlink_to(target)
    with pytest.raises(ValueError, match="not a regular file"):
        store.put_file(KEY, link)
    assert store.stat(KEY) is None
    assert target.read_bytes() == b"secret"


def test_put_files_moves_several_files_in_at_once(store: BlobStore) -> None:
    keys = {name: f"results/acct/task/1/{name}" for name in ("video.mp4", "first.jpg", "last.jpg")}
    with store.staging() as folder:
        sources = {keys[name]: folder / name for name in keys}
        for number, source in enumerate(sources.values()):
            source.write_bytes(CONTENT[number:])
        infos = store.put_files(sources)
        assert not any(source.exists() for source in sources.values())
    assert set(infos) == set(sources)
    for number, key in enumerate(sources):
        assert store.stat(key) == infos[key]
        with store.open_read(key) as stream:
            assert stream.read() == CONTENT[number:]


def test_put_files_checks_every_key_before_moving_any(store: BlobStore, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.mp4", tmp_path / "bad.mp4"
    good.write_bytes(b"good")
    bad.write_bytes(b"bad")
    with pytest.raises(InvalidKey):
        store.put_files({KEY: good, "a/../b": bad})
    assert store.stat(KEY) is None
    assert good.exists()
    assert bad.exists()


def test_list_files_names_every_file_of_a_folder_and_nothing_beside_it(store: BlobStore) -> None:
    inside = {"results/a/t1/video.mp4": b"video", "results/a/t1/deep/x.bin": b"x"}
    for key, data in inside.items():
        store.put_bytes(key, data)
    store.put_bytes("results/a/t10/video.mp4", b"sibling")
    listed = dict(store.list_files("results/a/t1/"))
    assert set(listed) == set(inside)
    for key, info in listed.items():
        assert info.size == len(inside[key])
        assert info == store.stat(key)
    assert dict(store.list_files("results/a/t1")) == listed
    assert list(store.list_files("results/none")) == []
    with pytest.raises(InvalidKey):
        list(store.list_files("a/../b"))


def test_delete_prefix_removes_a_folder_and_counts_its_files(store: BlobStore) -> None:
    for key in ("results/a/t1/video.mp4", "results/a/t1/video.first.jpg", "results/a/t1/deep/x.bin"):
        store.put_bytes(key, b"x")
    store.put_bytes("results/a/t10/video.mp4", b"sibling")
    store.put_bytes("results/b/t1/video.mp4", b"other account")
    assert store.delete_prefix("results/a/t1/") == 3
    assert store.stat("results/a/t1/video.mp4") is None
    assert store.stat("results/a/t1/deep/x.bin") is None
    assert store.stat("results/a/t10/video.mp4") is not None
    assert store.stat("results/b/t1/video.mp4") is not None
    assert store.delete_prefix("results/a/t1") == 0
    assert store.delete_prefix("results/a") == 1
    assert store.delete_prefix("results/none") == 0
    with pytest.raises(InvalidKey):
        store.delete_prefix("")
    with pytest.raises(InvalidKey):
        store.delete_prefix("/")


BAD_KEYS = [
    "",
    "/etc/passwd",
    "a\\b",
    "a/../b",
    "..",
    "a//b",
    "a/./b",
    "a/",
    "a\x00b",
    "a\nb",
    "x" * 1025,
    "a/" + "y" * 256,
    "\udcff",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_method_refuses_a_bad_key(store: BlobStore, key: str, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x")
    calls = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_file(key, source),
        lambda: store.open_read(key),
        lambda: store.stat(key),
        lambda: store.delete(key),
        lambda: store.local_path(key),
    ]
    for call in calls:
        with pytest.raises(InvalidKey):
            call()
    if key.removesuffix("/") != "a":  # "a/" names the folder "a", a good prefix
        with pytest.raises(InvalidKey):
            store.delete_prefix(key)
    assert source.exists()


def test_local_path_is_where_a_local_file_lives_and_none_for_a_remote_one(store: BlobStore) -> None:
    store.put_bytes(KEY, b"x")
    path = store.local_path(KEY)
    if isinstance(store, LocalBlobStore):
        assert path is not None
        assert path.read_bytes() == b"x"
    else:
        assert path is None


def test_staging_is_swept_of_what_is_stale_and_keeps_what_is_live(store: BlobStore) -> None:
    with store.staging() as live, store.staging() as crashed:
        (live / "video.mp4").write_bytes(b"a job still running")
        (crashed / "video.mp4").write_bytes(b"left behind")
        now = (live / "video.mp4").stat().st_mtime
        for path in (crashed / "video.mp4", crashed):
            os.utime(path, (now - 7200, now - 7200))
        assert store.sweep_staging(now=now, older_than_s=3600) == 1
        assert not crashed.exists()
        assert (live / "video.mp4").read_bytes() == b"a job still running"
    assert not live.exists()
