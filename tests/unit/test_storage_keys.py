"""What a storage key may be, and that a key never leads out of the store's root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kinema.domain.errors import InvalidInput
from kinema.storage.base import InvalidKey, check_key
from kinema.storage.local import LocalBlobStore

BAD_KEYS = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a//b",
    "a\\b",
    "a\x00b",
    "",
    ".",
    "..",
    "a/./b",
    "a/",
    "a/..",
    "a\nb",
    "a\x7fb",
    "a\x85b",  # a C1 control character
    "a\ud800b",  # a lone surrogate cannot be a file name
    "a/" + "x" * 256,
    "/".join(["abcdefgh"] * 120),  # 1079 bytes
]

GOOD_KEYS = [
    "results/acct/task/video.mp4",
    ".hidden/x",
    "a/.b",
    "a..b/..c",
    "uploads/acct/vidéo finale.mp4",
    "x" * 255,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidKey):
        check_key(key)


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys_pass_unchanged(key: str) -> None:
    assert check_key(key) == key


def test_invalid_key_is_a_value_error_and_a_422() -> None:
    with pytest.raises(InvalidKey) as caught:
        check_key("../x")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.code == 422
    assert "'..'" in caught.value.message


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"outside secret")
    return folder


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "root")


def test_a_symlinked_folder_pointing_outside_is_never_followed(store: LocalBlobStore, outside: Path) -> None:
    (store.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKey):
        store.open_read("link/secret.txt")
    with pytest.raises(InvalidKey):
        store.stat("link/secret.txt")
    with pytest.raises(InvalidKey):
        store.local_path("link/secret.txt")
    with pytest.raises(InvalidKey):
        store.put_bytes("link/new.txt", b"planted")
    with pytest.raises(InvalidKey):
        store.put_bytes("link/deeper/new.txt", b"planted")
    with pytest.raises(InvalidKey):
        store.delete("link/secret.txt")
    with pytest.raises(InvalidKey):
        store.delete_prefix("link")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"outside secret"


def test_a_symlinked_file_pointing_outside_is_never_followed(store: LocalBlobStore, outside: Path) -> None:
    (store.root / "results").mkdir()
    (store.root / "results" / "video.mp4").symlink_to(outside / "secret.txt")
    with pytest.raises(InvalidKey):
        store.open_read("results/video.mp4")
    with pytest.raises(InvalidKey):
        store.put_bytes("results/video.mp4", b"overwrite")
    assert (outside / "secret.txt").read_bytes() == b"outside secret"


def test_a_symlink_to_the_root_itself_is_refused(store: LocalBlobStore) -> None:
    (store.root / "self").symlink_to(store.root, target_is_directory=True)
    with pytest.raises(InvalidKey):
        store.delete_prefix("self")
    assert store.root.is_dir()


def test_a_symlink_loop_is_refused(store: LocalBlobStore) -> None:
    (store.root / "loop").symlink_to(store.root / "loop")
    with pytest.raises(InvalidKey):
        store.stat("loop/x")


def test_a_symlink_inside_the_root_is_followed(store: LocalBlobStore) -> None:
    store.put_bytes("real/clip.mp4", b"inside")
    (store.root / "alias").symlink_to(store.root / "real", target_is_directory=True)
    with store.open_read("alias/clip.mp4") as stream:
        assert stream.read() == b"inside"


def test_the_staging_folder_is_not_a_key(store: LocalBlobStore) -> None:
    with store.staging() as folder:
        (folder / "partial.mp4").write_bytes(b"half")
        name = f".staging/{folder.name}/partial.mp4"
        with pytest.raises(InvalidKey, match="reserved"):
            store.open_read(name)
    with pytest.raises(InvalidKey):
        store.delete_prefix(".staging")
    assert os.path.isdir(store.root / ".staging")
