"""A `BlobStore` on the local file system: a key is a file under one root folder.

Writes go to a temporary file in ``<root>/.staging``, are fsynced, and are renamed over the real
name with `os.replace`, which is atomic on POSIX; the folder is fsynced after, so that the
rename survives a power cut. A crash therefore leaves at worst a stale file in ``.staging``,
never a partial file under a key; `LocalBlobStore.sweep_staging` deletes those
(`kinema.storage.staging`). The staging folder sits inside the root so that it is on the same
file system and the rename never becomes a copy.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from kinema.storage.base import BlobInfo, InvalidKey, check_key
from kinema.storage.staging import Staging

STAGING_DIR = ".staging"
"""The root's folder for temporary files; a reserved name that no key may start with."""

_COPY_CHUNK = 1024 * 1024


class LocalBlobStore:
    """Files under `root`; nothing outside it can be read, written or deleted through a key."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        # Resolved once, so that every later containment check compares real paths.
        self._root = root.resolve(strict=True)
        self._staging = Staging(self._root / STAGING_DIR)

    @property
    def root(self) -> Path:
        return self._root

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        target = self._path(key)
        fd, name = tempfile.mkstemp(prefix="put-", suffix=".part", dir=self._staging.root)
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            return self._commit(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def put_file(self, key: str, source: Path) -> BlobInfo:
        return self.put_files({key: source})[key]

    def put_files(self, files: Mapping[str, Path]) -> dict[str, BlobInfo]:
        targets = {key: self._path(key) for key in files}
        for source in files.values():
            # A symlink would be moved as a link, and the stored "file" would point anywhere.
            if not stat.S_ISREG(os.lstat(source).st_mode):
                raise ValueError(f"{source} is not a regular file")
        # Each file is made durable, then renamed in; each folder's renames are made durable
        # once for all its files (a task's three results share one folder).
        folders = {self._move_in(source, targets[key]) for key, source in files.items()}
        for folder in folders:
            _fsync_dir(folder)
        return {key: _info(os.stat(target)) for key, target in targets.items()}

    def _move_in(self, source: Path, target: Path) -> Path:
        """Rename the local file `source` over `target` once its content is on disk; the
        folder whose entry changed, for the caller to fsync."""
        _fsync_file(source)
        # `target` is resolved and inside the root, so the folders created here are too.
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
            return target.parent
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
        # `source` is on another file system: copy it into staging first, so that the step that
        # makes it visible is still a rename.
        fd, name = tempfile.mkstemp(prefix="put-", suffix=".part", dir=self._staging.root)
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        source.unlink()
        return target.parent

    def open_read(self, key: str) -> BinaryIO:
        path = self._path(key)
        # O_NOFOLLOW: the path was resolved inside the root; if its last component has become a
        # symlink since, refuse rather than follow it. O_NONBLOCK: a FIFO must not hang us.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileNotFoundError(errno.ENOENT, "no stored file under this key", key)
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def stat(self, key: str) -> BlobInfo | None:
        path = self._path(key)
        try:
            result = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(result.st_mode):
            return None
        return _info(result)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return False  # a folder is not a stored file; `delete_prefix` removes those
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def list_files(self, prefix: str) -> Iterator[tuple[str, BlobInfo]]:
        folder = self._path(prefix.removesuffix("/"))
        # Without following symlinks, as `delete_prefix` walks: only what lies in the folder.
        for dirpath, _dirnames, filenames in os.walk(folder):
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    result = os.lstat(path)
                except FileNotFoundError:  # deleted while we walked
                    continue
                if stat.S_ISREG(result.st_mode):
                    yield Path(path).relative_to(self._root).as_posix(), _info(result)

    def delete_prefix(self, prefix: str) -> int:
        folder = self._path(prefix.removesuffix("/"))
        if not folder.is_dir():
            return 0
        deleted = 0
        # Bottom-up, without following symlinks: a link to a folder elsewhere is removed as a
        # link, its target is never walked.
        for dirpath, dirnames, filenames in os.walk(folder, topdown=False, onerror=_raise):
            for name in filenames:
                os.unlink(os.path.join(dirpath, name))
                deleted += 1
            for name in dirnames:
                child = os.path.join(dirpath, name)
                if os.path.islink(child):
                    os.unlink(child)
                else:
                    os.rmdir(child)
        os.rmdir(folder)
        return deleted

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def staging(self) -> AbstractContextManager[Path]:
        return self._staging.job_folder()

    def sweep_staging(self, now: float, older_than_s: float) -> int:
        """Delete what crashed writers left in staging (see `Staging.sweep`)."""
        return self._staging.sweep(now, older_than_s)

    def _path(self, key: str) -> Path:
        """The real path for `key`, after symlinks; refuses anything not strictly inside the root."""
        check_key(key)
        if key.split("/", 1)[0] == STAGING_DIR:
            raise InvalidKey(f"the file path must not start with the reserved name {STAGING_DIR}")
        try:
            path = (self._root / key).resolve()
        except (OSError, RuntimeError) as error:  # symlink loops: RuntimeError before 3.13
            raise InvalidKey("the file path cannot be resolved") from error
        inside = path != self._root and path.is_relative_to(self._root)
        if not inside or path.is_relative_to(self._staging.root):
            raise InvalidKey("the file path leads outside the storage")
        return path

    def _commit(self, temp: Path, target: Path) -> BlobInfo:
        """Rename the finished, fsynced `temp` over `target`, and make the rename durable."""
        # `target` is resolved and inside the root, so the folders created here are too.
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, target)
        _fsync_dir(target.parent)
        return _info(os.stat(target))


def _info(result: os.stat_result) -> BlobInfo:
    # The inode changes with every put (each is a new file renamed in), so the ETag changes even
    # when size and a coarse mtime do not.
    etag = f'"{result.st_ino:x}-{result.st_size:x}-{result.st_mtime_ns:x}"'
    return BlobInfo(size=result.st_size, modified_ns=result.st_mtime_ns, etag=etag)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raise(error: OSError) -> None:
    raise error
