"""The local store on a real file system: the round trip, deletion, and atomic writes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kinema.storage.base import InvalidKey
from kinema.storage.local import LocalBlobStore

KEY = "results/acct/task/video.mp4"


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "root")


def staged(store: LocalBlobStore) -> list[str]:
    return sorted(p.name for p in (store.root / ".staging").iterdir())


def test_put_open_stat_delete(store: LocalBlobStore) -> None:
    info = store.put_bytes(KEY, b"movie bytes")
    with store.open_read(KEY) as stream:
        assert stream.read() == b"movie bytes"
    assert store.stat(KEY) == info
    assert info.size == 11
    assert info.etag.startswith('"')
    assert info.etag.endswith('"')
    assert info.modified_ns == (store.root / KEY).stat().st_mtime_ns
    assert store.local_path(KEY) == store.root / KEY
    assert store.delete(KEY) is True
    assert store.delete(KEY) is False
    assert store.stat(KEY) is None
    with pytest.raises(FileNotFoundError):
        store.open_read(KEY)
    assert staged(store) == []


def test_folders_are_not_files(store: LocalBlobStore) -> None:
    store.put_bytes(KEY, b"x")
    assert store.stat("results/acct") is None
    assert store.stat(KEY + "/below") is None
    assert store.delete("results/acct") is False
    with pytest.raises(FileNotFoundError):
        store.open_read("results/acct")


def test_a_fifo_is_not_opened_and_does_not_hang(store: LocalBlobStore) -> None:
    os.mkfifo(store.root / "pipe")
    assert store.stat("pipe") is None
    with pytest.raises(FileNotFoundError):
        store.open_read("pipe")


def test_a_re_put_replaces_and_changes_the_etag(store: LocalBlobStore) -> None:
    first = store.put_bytes(KEY, b"first")
    with store.open_read(KEY) as before:
        second = store.put_bytes(KEY, b"secon")
        # A reader that opened the old file keeps reading it whole: the new one was renamed in.
        assert before.read() == b"first"
    with store.open_read(KEY) as after:
        assert after.read() == b"secon"
    assert first.size == second.size
    assert first.etag != second.etag


def test_put_file_moves_a_finished_file_in(store: LocalBlobStore) -> None:
    with store.staging() as folder:
        video = folder / "video.mp4"
        video.write_bytes(b"rendered")
        (folder / "video.first.jpg").write_bytes(b"still")
        info = store.put_file(KEY, video)
        assert not video.exists()
        assert info.size == 8
    assert not folder.exists()
    with store.open_read(KEY) as stream:
        assert stream.read() == b"rendered"
    assert staged(store) == []


def test_put_file_from_another_file_system_copies_then_renames(
    store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "elsewhere.mp4"
    source.write_bytes(b"far away" * 1000)
    real_replace = os.replace

    def cross_device(src: str | Path, dst: str | Path) -> None:
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", cross_device)
    store.put_file(KEY, source)
    assert not source.exists()
    with store.open_read(KEY) as stream:
        assert stream.read() == b"far away" * 1000
    assert staged(store) == []


def test_put_file_refuses_a_symlink(store: LocalBlobStore, tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_bytes(b"secret")
    link = tmp_path / "link.mp4"
    link.symlink_to(target)
    with pytest.raises(ValueError, match="not a regular file"):
        store.put_file(KEY, link)
    assert store.stat(KEY) is None


def test_delete_prefix_removes_a_folder_and_counts_its_files(store: LocalBlobStore) -> None:
    for key in ("results/a/t1/video.mp4", "results/a/t1/video.first.jpg", "results/a/t1/deep/x.bin"):
        store.put_bytes(key, b"x")
    store.put_bytes("results/a/t10/video.mp4", b"sibling")
    store.put_bytes("results/b/t1/video.mp4", b"other account")
    assert store.delete_prefix("results/a/t1/") == 3
    assert not (store.root / "results/a/t1").exists()
    assert store.stat("results/a/t10/video.mp4") is not None
    assert store.stat("results/b/t1/video.mp4") is not None
    assert store.delete_prefix("results/a/t1") == 0
    assert store.delete_prefix("results/a") == 1
    with pytest.raises(InvalidKey):
        store.delete_prefix("")
    with pytest.raises(InvalidKey):
        store.delete_prefix("/")


def test_delete_prefix_unlinks_a_symlink_without_walking_it(store: LocalBlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"keep")
    store.put_bytes("results/a/video.mp4", b"x")
    (store.root / "results/a/escape").symlink_to(outside, target_is_directory=True)
    assert store.delete_prefix("results/a") == 1
    assert (outside / "keep.txt").read_bytes() == b"keep"


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_write_leaves_nothing_under_the_key(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    def fail(*args: object) -> None:
        raise OSError(errno.EIO, "simulated failure")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match="simulated failure"):
        store.put_bytes(KEY, b"never visible")
    monkeypatch.undo()
    assert store.stat(KEY) is None
    assert not (store.root / KEY).exists()
    assert staged(store) == []


def test_a_failed_re_put_keeps_the_old_file(store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old = store.put_bytes(KEY, b"old and whole")

    def fail(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        store.put_bytes(KEY, b"new")
    with store.staging() as folder:
        (folder / "video.mp4").write_bytes(b"new")
        with pytest.raises(OSError, match="No space"):
            store.put_file(KEY, folder / "video.mp4")
    monkeypatch.undo()
    assert store.stat(KEY) == old
    with store.open_read(KEY) as stream:
        assert stream.read() == b"old and whole"


def test_a_crash_mid_write_leaves_only_a_stale_temporary_that_the_sweeper_removes(
    store: LocalBlobStore,
) -> None:
    # A real crash: the process dies between writing the temporary file and renaming it, so no
    # cleanup code runs at all.
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from kinema.storage import local
        store = local.LocalBlobStore(Path({str(store.root)!r}))
        local.os.replace = lambda src, dst: os._exit(3)
        store.put_bytes({KEY!r}, b"half written")
        """
    )
    died = subprocess.run([sys.executable, "-c", script], check=False)
    assert died.returncode == 3
    assert not (store.root / KEY).exists()
    leftovers = staged(store)
    assert len(leftovers) == 1
    assert leftovers[0].endswith(".part")

    with store.staging() as live:
        (live / "video.mp4").write_bytes(b"a job still running")
        now = (live / "video.mp4").stat().st_mtime
        stale = store.root / ".staging" / leftovers[0]
        os.utime(stale, (now - 7200, now - 7200))
        assert store.sweep_staging(now=now, older_than_s=3600) == 1
        assert staged(store) == [live.name]
        assert (live / "video.mp4").exists()
    assert staged(store) == []


def test_the_root_is_created_and_resolved(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    store = LocalBlobStore(tmp_path / "alias" / "store")
    assert store.root == (tmp_path / "real" / "store").resolve()
    store.put_bytes("a.txt", b"x")
    assert (tmp_path / "real" / "store" / "a.txt").read_bytes() == b"x"


def test_a_job_folder_of_a_process_that_died_is_swept_at_once(store: LocalBlobStore) -> None:
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from kinema.storage import local
        store = local.LocalBlobStore(Path({str(store.root)!r}))
        with store.staging() as folder:
            (folder / "video.mp4").write_bytes(b"half a video")
            os.kill(os.getpid(), 9)
        """
    )
    died = subprocess.run([sys.executable, "-c", script], check=False)
    assert died.returncode == -9
    (orphan,) = staged(store)
    with store.staging() as live:
        now = (store.root / ".staging" / orphan).stat().st_mtime
        # Fresh, well inside any age bound: gone only because its process is.
        assert store.sweep_staging(now=now, older_than_s=24 * 3600) == 1
        assert staged(store) == [live.name]
