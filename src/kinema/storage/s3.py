"""A `BlobStore` in an S3 bucket, on AWS or any S3-compatible server, through boto3.

A key is the object ``<prefix><key>`` of one bucket. What the port asks of a store holds this way:

- Writes are atomic because S3's are: a PUT, and a multipart upload once completed, replace the
  object whole, and a failed or abandoned upload leaves nothing under the key (the parts of an
  abandoned multipart upload are invisible, and a bucket lifecycle rule that aborts incomplete
  multipart uploads reclaims them). Results go through boto3's managed transfer, in parts
  above `S3Options.multipart_threshold_bytes`.
- `open_read` answers a seekable reader over ranged GETs rather than a spooled temporary copy:
  a read after a seek opens one GET from that byte on and reads it as it streams, so serving a
  range of a long video costs one request and no disk, and the first byte comes at once. Each
  GET carries the ETag seen at opening as ``If-Match``: a file replaced in the meantime fails
  the read instead of mixing two versions.
- There is no local path; producers write into a local staging folder (`Staging`) and the
  finished file is uploaded from there.
- A bucket that cannot be reached, or that refuses the service's credentials, is `Unavailable`
  (answered 503 with ``Retry-After``), never an unexpected error.

The store also makes presigned links (`BucketLinks`): the bucket itself then serves the files.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, NoReturn
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import httpx
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kinema.domain.errors import Unavailable
from kinema.storage.base import BlobInfo, check_key, media_type
from kinema.storage.signing import LinkCheck
from kinema.storage.staging import Staging

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef, ObjectIdentifierTypeDef

log = logging.getLogger("kinema.storage")

MIB: Final = 1024 * 1024
MIN_PART_BYTES: Final = 5 * MIB
"""S3's smallest part of a multipart upload (but the last)."""
PART_BYTES: Final = 16 * MIB
"""Each part of a multipart upload: 10,000 parts (S3's most) make 160 GB, far beyond a video."""
MAX_LINK_SECONDS: Final = 7 * 24 * 3600
"""The longest a presigned link (signature version 4) may last; S3 refuses longer ones."""
_READ_BUFFER: Final = 256 * 1024
_RETRY_AFTER_S: Final = 5


@dataclass(frozen=True, slots=True)
class S3Options:
    """Where the bucket is and how to talk to it; unset values come from the AWS chain."""

    bucket: str
    prefix: str = ""  #: Put before every key: empty, or a folder such as ``kinema/``.
    endpoint_url: str | None = None  #: None: AWS itself.
    region: str | None = None
    access_key_id: str | None = None  #: With `secret_access_key`; None: the standard AWS chain.
    secret_access_key: str | None = None
    path_style: bool = False  #: ``host/bucket/key`` URLs, as most S3-compatible servers want.
    multipart_threshold_bytes: int = 64 * MIB
    max_attempts: int = 3  #: Per call, retries included, before the storage counts as away.
    timeout_s: float = 10.0  #: To connect, and between two reads of an answer.


class S3BlobStore:
    """Files in the bucket of `options`; writers stage their files under `staging_root`."""

    delete_batch: int = 1000
    """Keys listed, then deleted, per call of `delete_prefix`: S3 takes at most 1000."""

    def __init__(self, options: S3Options, staging_root: Path) -> None:
        if options.prefix:
            check_key(options.prefix.removesuffix("/"))
        self.bucket = options.bucket
        # A prefix names a folder: "kinema" and "kinema/" are the same.
        self.prefix = options.prefix.removesuffix("/") + "/" if options.prefix else ""
        self._timeout_s = options.timeout_s
        session = boto3.session.Session(
            aws_access_key_id=options.access_key_id,
            aws_secret_access_key=options.secret_access_key,
            region_name=options.region,
        )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if options.path_style else "auto"},
            retries={"mode": "standard", "max_attempts": options.max_attempts},
            connect_timeout=options.timeout_s,
            read_timeout=options.timeout_s,
            # Every API thread and worker thread of a process shares this client.
            max_pool_connections=32,
        )
        self._client: S3Client = session.client("s3", endpoint_url=options.endpoint_url, config=config)
        self._transfer = TransferConfig(
            multipart_threshold=max(options.multipart_threshold_bytes, MIN_PART_BYTES),
            multipart_chunksize=PART_BYTES,
        )
        self._staging = Staging(staging_root)

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix})"

    # The port.

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        name = self._name(key)
        with _storage_errors("store", key):
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=media_type(key))
        return self._written(name, key)

    def put_file(self, key: str, source: Path) -> BlobInfo:
        name = self._name(key)
        # A symlink would upload whatever it points at.
        if not stat.S_ISREG(os.lstat(source).st_mode):
            raise ValueError(f"{source} is not a regular file")
        with _storage_errors("store", key):
            self._client.upload_file(
                str(source),
                self.bucket,
                name,
                ExtraArgs={"ContentType": media_type(key)},
                Config=self._transfer,
            )
        source.unlink()
        return self._written(name, key)

    def put_files(self, files: Mapping[str, Path]) -> dict[str, BlobInfo]:
        for key in files:
            self._name(key)  # every key checked before the first upload
        return {key: self.put_file(key, source) for key, source in files.items()}

    def open_read(self, key: str) -> BinaryIO:
        name = self._name(key)
        head = self._head(name, key)
        if head is None:
            raise FileNotFoundError(errno.ENOENT, "no stored file under this key", key)
        reader = _RangedReader(self._client, self.bucket, name, key, _info(head))
        return io.BufferedReader(reader, buffer_size=_READ_BUFFER)

    def stat(self, key: str) -> BlobInfo | None:
        head = self._head(self._name(key), key)
        return None if head is None else _info(head)

    def delete(self, key: str) -> bool:
        name = self._name(key)
        # S3 answers a DELETE the same whether or not there was an object: ask first.
        if self._head(name, key) is None:
            return False
        with _storage_errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=name)
        return True

    def list_files(self, prefix: str) -> Iterator[tuple[str, BlobInfo]]:
        folder = check_key(prefix.removesuffix("/"))
        with _storage_errors("list", folder):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}{folder}/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    info = _blob_info(item["Size"], item["LastModified"], item["ETag"])
                    yield item["Key"].removeprefix(self.prefix), info

    def delete_prefix(self, prefix: str) -> int:
        folder = check_key(prefix.removesuffix("/"))
        deleted = 0
        with _storage_errors("delete", folder):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=f"{self.prefix}{folder}/",
                PaginationConfig={"PageSize": self.delete_batch},
            )
            for page in pages:
                objects: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in page.get("Contents", []) if "Key" in item
                ]
                if not objects:
                    continue
                answer = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                refused = answer.get("Errors", [])
                if refused:
                    first = refused[0]
                    log.warning(
                        "S3 refused to delete %d of %d objects under %s (%s: %s)",
                        len(refused),
                        len(objects),
                        folder,
                        first.get("Code"),
                        first.get("Message"),
                    )
                    raise Unavailable("the file storage refused to delete some files", _RETRY_AFTER_S)
                deleted += len(objects)
        return deleted

    def local_path(self, key: str) -> Path | None:
        check_key(key)
        return None  # nothing of the bucket is on this machine

    def staging(self) -> AbstractContextManager[Path]:
        return self._staging.job_folder()

    def sweep_staging(self, now: float, older_than_s: float) -> int:
        return self._staging.sweep(now, older_than_s)

    # Presigned links (`BucketLinks`).

    def presigned_url(self, key: str, expires_at: int) -> str:
        """A link the bucket serves until `expires_at` (Unix seconds), a week at most."""
        # botocore dates the signature with its own clock, so the lifetime is counted on it too.
        lasting_s = min(max(expires_at - int(time.time()), 1), MAX_LINK_SECONDS)
        with _storage_errors("sign a link to", key):
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._name(key)}, ExpiresIn=lasting_s
            )

    def key_of(self, url: str) -> str | None:
        """The key a presigned link of this bucket names; None for any other URL.

        Only the address is compared, not the signature: S3 alone can check that.
        """
        try:
            parts = urlsplit(url)
            origin, path = self._link_base
            if (parts.scheme, parts.netloc) != origin or not parts.path.startswith(path):
                return None
            if "X-Amz-Signature" not in parse_qs(parts.query):
                return None
            return check_key(unquote(parts.path.removeprefix(path), errors="strict"))
        except (ValueError, UnicodeDecodeError):  # InvalidKey is a ValueError
            return None

    def read_link(self, url: str) -> tuple[LinkCheck, bytes | None]:
        """The file behind a presigned link of this bucket, read through the link itself.

        S3 checks the link's signature and expiry as it would for anyone; the request goes to
        the bucket's own address (`key_of` made sure of it), never to one a user chose. The
        bytes are None when the link is valid but the file is gone.
        """
        key = self.key_of(url)
        if key is None:
            return LinkCheck.TAMPERED, None
        try:
            answer = httpx.get(url, timeout=self._timeout_s)
        except httpx.HTTPError as error:
            log.warning("S3 could not be reached to read %s: %s", key, error)
            raise Unavailable("the file storage cannot be reached; try again in a moment") from error
        if answer.status_code == 200:
            return LinkCheck.VALID, answer.content
        if answer.status_code == 404:
            return LinkCheck.VALID, None
        if answer.status_code in (400, 403):
            expired = "expired" in answer.text.lower()
            return (LinkCheck.EXPIRED if expired else LinkCheck.TAMPERED), None
        log.warning("S3 answered %d reading %s through its link", answer.status_code, key)
        raise Unavailable("the file storage is failing; try again in a moment", _RETRY_AFTER_S)

    @cached_property
    def _link_base(self) -> tuple[tuple[str, str], str]:
        """The scheme and host of this bucket's presigned links, and the path before a key."""
        probe = "k"
        parts = urlsplit(self.presigned_url(probe, int(time.time()) + 60))
        return (parts.scheme, parts.netloc), parts.path.removesuffix(probe)

    # Inside.

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _head(self, name: str, key: str) -> HeadObjectOutputTypeDef | None:
        with _storage_errors("read", key):
            try:
                return self._client.head_object(Bucket=self.bucket, Key=name)
            except ClientError as error:
                if _status(error) == 404:
                    return None
                raise

    def _written(self, name: str, key: str) -> BlobInfo:
        head = self._head(name, key)
        if head is None:  # S3 reads after writes consistently: someone deleted it at once
            raise FileNotFoundError(errno.ENOENT, "the stored file vanished as it was written", key)
        return _info(head)


class _RangedReader(io.RawIOBase):
    """A stored object read by ranged GETs: one streamed GET per stretch read without a seek."""

    def __init__(self, client: S3Client, bucket: str, name: str, key: str, info: BlobInfo) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._name = name
        self._key = key
        self._info = info
        self._position = 0
        self._body: StreamingBody | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        bases = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._info.size}
        if whence not in bases:
            raise ValueError(f"invalid whence ({whence})")
        target = bases[whence] + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._position:
            self._drop()
            self._position = target
        return self._position

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._position >= self._info.size:
            return 0
        view = memoryview(buffer).cast("B")
        if self._body is None:
            self._body = self._open(self._position)
        with _storage_errors("read", self._key):
            chunk = self._body.read(len(view))
        if not chunk:
            raise OSError(errno.EIO, "the stored file ended before its length", self._key)
        view[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def close(self) -> None:
        self._drop()
        super().close()

    def _open(self, start: int) -> StreamingBody:
        with _storage_errors("read", self._key):
            try:
                answer = self._client.get_object(
                    Bucket=self._bucket, Key=self._name, Range=f"bytes={start}-", IfMatch=self._info.etag
                )
            except ClientError as error:
                if _status(error) == 412:
                    changed = "the stored file changed while it was read"
                    raise OSError(errno.ESTALE, changed, self._key) from None
                if _status(error) == 404:
                    raise FileNotFoundError(errno.ENOENT, "the stored file is gone", self._key) from None
                raise
        return answer["Body"]

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


def _info(head: HeadObjectOutputTypeDef) -> BlobInfo:
    return _blob_info(head["ContentLength"], head["LastModified"], head["ETag"])


def _blob_info(size: int, modified: datetime, etag: str) -> BlobInfo:
    # S3's ETag is quoted already, and changes with the content (an MD5, or a digest of the
    # parts' for a multipart upload).
    return BlobInfo(size=size, modified_ns=int(modified.timestamp()) * 1_000_000_000, etag=etag)


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@contextmanager
def _storage_errors(doing: str, key: str) -> Iterator[None]:
    """S3's failures as the domain's: an outage, refused credentials or a missing bucket are
    `Unavailable`; anything else (a bug of ours) goes on as it is."""
    try:
        yield
    except S3UploadFailedError as error:
        # boto3's managed upload wraps S3's answer in words; the answer itself is the context.
        cause = error.__context__
        if isinstance(cause, ClientError | BotoCoreError):
            _unavailable(doing, key, cause)
        raise
    except (BotoCoreError, ClientError) as error:
        if isinstance(error, ClientError) and not _is_outage(error):
            raise
        _unavailable(doing, key, error)


def _is_outage(error: ClientError) -> bool:
    """Whether S3's answer says the storage cannot serve us, rather than that we asked wrong."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = _status(error)
    return status in (401, 403) or status >= 500 or code in _OUTAGE_CODES


#: Answers that mean the bucket is not there for us, whatever was asked.
_OUTAGE_CODES: Final = frozenset(
    {"NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "SlowDown"}
)


def _unavailable(doing: str, key: str, error: Exception) -> NoReturn:
    log.warning("S3: could not %s %s: %s", doing, key, error)
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = _status(error)
        if code == "NoSuchBucket":
            message = "the file storage's bucket does not exist"
        elif status in (401, 403) or code in _OUTAGE_CODES - {"NoSuchBucket", "SlowDown"}:
            message = "the file storage refused the service's credentials"
        else:
            message = "the file storage is failing; try again in a moment"
    elif "credential" in type(error).__name__.lower():
        message = "the file storage has no credentials to use"
    else:
        message = "the file storage cannot be reached; try again in a moment"
    raise Unavailable(message, _RETRY_AFTER_S) from error
