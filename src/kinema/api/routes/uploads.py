"""The published upload API: a file as multipart, by URL, or as base64; and fresh download links.

Each upload lands in the calling account's own space and answers a signed ``downloadUrl`` that
lives as long as the file (``KINEMA_UPLOAD_RETENTION_DAYS``). That URL is what ``image_url``
expects: a task given it reads the file locally and checks it at once.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError, WithJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from kinema.accounts.keys import Caller
from kinema.api import openapi_patterns
from kinema.api.auth import CallerDep, ServicesDep
from kinema.api.bodies import BodyCap
from kinema.api.routes.jobs import BadRequest
from kinema.api.services import Services
from kinema.catalog import MAX_URL_LENGTH
from kinema.domain.errors import InvalidInput, Maintenance
from kinema.files import uploads
from kinema.files.uploads import Upload
from kinema.net.fetcher import SafeFetcher
from kinema.storage import layout
from kinema.storage.base import InvalidKey, check_key

router = APIRouter(tags=["files"])

UPLOADED: Final = "File uploaded successfully"
DOWNLOAD_LINK_SECONDS: Final = 20 * 60
#: Room for the multipart framing and the text fields around the file, or for the JSON around
#: the base64 text (a data URL's prefix, ``uploadPath``, ``fileName``).
_FRAMING: Final = 64 * 1024
_DATA_URL: Final = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*;base64,", re.ASCII)
_CHUNK: Final = 1024 * 1024


#: ``uploadPath`` as `kinema.files.uploads` takes it. The models read it as optional, so that
#: its absence is answered in the contract's words ("uploadPath is required").
UPLOAD_PATH_SCHEMA: Final = {
    "type": "string",
    "maxLength": uploads.MAX_UPLOAD_PATH,
    "pattern": openapi_patterns.UPLOAD_PATH,
    "description": "The folder, e.g. images/2026; each of its names at most 255 bytes of UTF-8.",
}
FILE_NAME_SCHEMA: Final = {
    "type": ["string", "null"],
    "maxLength": uploads.MAX_FILE_NAME,
    "pattern": openapi_patterns.FILE_NAME,
    "description": "The file's name, at most 255 bytes of UTF-8; one of the server's choosing when absent.",
}
#: What the upload routes store: images of these types, told by their content.
IMAGE_TYPES: Final = "image/jpeg, image/png, image/webp"


def _upload_path_required(schema: dict[str, Any]) -> None:
    schema["required"] = [*schema.get("required", []), "uploadPath"]
    schema["properties"]["uploadPath"].pop("default", None)


class UrlUpload(BaseModel):
    model_config = ConfigDict(json_schema_extra=_upload_path_required)

    fileUrl: Annotated[  # noqa: N815
        str,
        WithJsonSchema(
            {
                "type": "string",
                "format": "uri",
                "maxLength": MAX_URL_LENGTH,
                "pattern": openapi_patterns.WEB_URL,
                "description": f"An http or https URL that serves the file ({IMAGE_TYPES}).",
            }
        ),
    ]
    uploadPath: Annotated[str | None, WithJsonSchema(UPLOAD_PATH_SCHEMA)] = None  # noqa: N815
    fileName: Annotated[str | None, WithJsonSchema(FILE_NAME_SCHEMA)] = None  # noqa: N815


class Base64Upload(BaseModel):
    model_config = ConfigDict(json_schema_extra=_upload_path_required)

    base64Data: Annotated[  # noqa: N815
        str,
        WithJsonSchema(
            {
                "type": "string",
                "format": "image-base64",
                "description": (
                    f"An image ({IMAGE_TYPES}) in base64: plain, or as a data URL "
                    "(data:image/png;base64,...)."
                ),
            }
        ),
    ]
    uploadPath: Annotated[str | None, WithJsonSchema(UPLOAD_PATH_SCHEMA)] = None  # noqa: N815
    fileName: Annotated[str | None, WithJsonSchema(FILE_NAME_SCHEMA)] = None  # noqa: N815


class DownloadUrlBody(BaseModel):
    url: Annotated[
        str,
        WithJsonSchema(
            {
                "type": "string",
                "format": "file-link",
                "description": (
                    "A file link this server gave you (a result URL or an upload's downloadUrl), "
                    "expired or not, to a file that still exists."
                ),
            }
        ),
    ]


def _both_prefixes(route: str) -> list[str]:
    return [f"/api/{route}", f"/file-upload/api/{route}"]


def body_caps(max_bytes: int) -> dict[str, BodyCap]:
    """The bodies the upload routes take, by path: a file of `max_bytes` and its framing."""
    too_large = f"the file is larger than {max_bytes / (1024 * 1024):g} MB"
    stream = BodyCap(max_bytes + _FRAMING, too_large)
    base64_text = BodyCap(_base64_length(max_bytes) + _FRAMING, too_large)
    return dict.fromkeys(_both_prefixes("file-stream-upload"), stream) | dict.fromkeys(
        _both_prefixes("file-base64-upload"), base64_text
    )


def _base64_length(size: int) -> int:
    return (size // 3 + 1) * 4


async def _stream_upload(request: Request, found: ServicesDep, who: CallerDep) -> dict[str, Any]:
    # The body is capped while it streams in (`body_caps`); the file's own size is checked below.
    _refuse_in_maintenance(found)
    limit = found.upload_rules.max_bytes
    try:
        form = await request.form(max_files=1, max_fields=10)
    except HTTPException as error:  # Starlette's, for framing its parser cannot read
        detail = str(error.detail).rstrip(".")
        raise BadRequest(f"the multipart body cannot be read: {detail[:1].lower()}{detail[1:]}") from None
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidInput("file is required (a multipart field named file)")
        data = await _read_capped(file, limit)
        file_name = form.get("fileName") or file.filename
        upload = await run_in_threadpool(_save, found, who, form.get("uploadPath"), file_name, data)
    finally:
        await form.close()
    return _answer(found, upload)


async def _url_upload(body: UrlUpload, found: ServicesDep, who: CallerDep) -> dict[str, Any]:
    # Everything that costs nothing comes first; the fetch runs off the request pool, a few
    # at a time per account (`kinema.api.fetches`).
    _refuse_in_maintenance(found)
    uploads.clean_upload_path(body.uploadPath)  # refuse a bad path before fetching anything
    await found.limits.hit_soon(found.limits.url_upload, "url-upload", who.account_id)
    upload = await found.url_fetches.run(who.account_id, lambda: _fetch_and_save(found, who, body))
    return _answer(found, upload)


def _fetch_and_save(found: Services, who: Caller, body: UrlUpload) -> Upload:
    data = found.own_files.read(body.fileUrl, "fileUrl")
    if data is None:
        with SafeFetcher(found.fetch_policy) as fetcher:
            data = fetcher.get(body.fileUrl, field="fileUrl", max_bytes=found.upload_rules.max_bytes).data
    file_name = body.fileName or _name_from_url(body.fileUrl)
    return _save(found, who, body.uploadPath, file_name, data)


async def _base64_upload(request: Request, found: ServicesDep, who: CallerDep) -> dict[str, Any]:
    # The body is read here, after the key is checked, rather than by FastAPI before it.
    _refuse_in_maintenance(found)
    body = _read_json(Base64Upload, await request.body())
    return await run_in_threadpool(_save_base64, found, who, body)


_Body = TypeVar("_Body", bound=BaseModel)


def _read_json(model: type[_Body], raw: bytes) -> _Body:
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [detail | {"loc": ("body", *detail["loc"])} for detail in error.errors(include_url=False)]
        ) from None


def _save_base64(found: Services, who: Caller, body: Base64Upload) -> dict[str, Any]:
    text = body.base64Data.strip()
    match = _DATA_URL.match(text)
    if text.startswith("data:") and match is None:
        raise InvalidInput("base64Data is a data URL without ;base64, (data:<type>;base64,<data>)")
    if match is not None:
        text = text[match.end() :]
    limit = found.upload_rules.max_bytes
    if len(text) > _base64_length(limit) + 4:
        raise InvalidInput(f"the file is larger than {limit / (1024 * 1024):g} MB")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidInput("base64Data is not valid base64") from error
    return _answer(found, _save(found, who, body.uploadPath, body.fileName, data))


for _path in _both_prefixes("file-stream-upload"):
    router.add_api_route(_path, _stream_upload, methods=["POST"], summary="Upload a file (multipart)")
for _path in _both_prefixes("file-url-upload"):
    router.add_api_route(_path, _url_upload, methods=["POST"], summary="Upload a file from a URL")
for _path in _both_prefixes("file-base64-upload"):
    router.add_api_route(
        _path,
        _base64_upload,
        methods=["POST"],
        summary="Upload a file as base64",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": Base64Upload.model_json_schema()}},
            }
        },
    )


@router.post("/api/v1/common/download-url", summary="A fresh 20-minute link to one of your files")
def download_url(body: DownloadUrlBody, found: ServicesDep, who: CallerDep) -> dict[str, Any]:
    key = found.signer.issued_key(body.url, found.settings.public_url)
    own = (layout.results_of_account(who.account_id), layout.upload_prefix(who.account_id))
    if key is None or not key.startswith(own):
        raise InvalidInput("url must be a file link of this server that belongs to you")
    if found.store.stat(key) is None:
        raise InvalidInput("the file no longer exists (it expired)")
    return {"code": 200, "msg": "success", "data": _link(found, key, DOWNLOAD_LINK_SECONDS)}


def _save(found: Services, who: Caller, upload_path: object, file_name: object, data: bytes) -> Upload:
    retention_ms = round(found.settings.upload_retention_days * 86_400_000)
    return uploads.save_upload(
        found.db,
        found.store,
        who.account_id,
        upload_path=upload_path,
        file_name=file_name,
        data=data,
        rules=found.upload_rules,
        now=found.clock(),
        retention_ms=retention_ms,
    )


def _answer(found: Services, upload: Upload) -> dict[str, Any]:
    lifetime_s = (upload.expires_at - found.clock()) // 1000
    return {
        "success": True,
        "code": 200,
        "msg": UPLOADED,
        "data": {
            "fileName": upload.file_name,
            "filePath": upload.file_path,
            "downloadUrl": _link(found, upload.key, lifetime_s),
            "fileSize": upload.size,
            "mimeType": upload.mime_type,
            "uploadedAt": upload.uploaded_at,
        },
    }


def _link(found: Services, key: str, lifetime_s: int) -> str:
    return found.signer.signed_url(found.settings.public_url, key, found.now_s() + lifetime_s)


def _refuse_in_maintenance(found: Services) -> None:
    if found.settings.maintenance:
        raise Maintenance()


async def _read_capped(file: UploadFile, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise InvalidInput(f"the file is larger than {limit / (1024 * 1024):g} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _name_from_url(url: str) -> str | None:
    """The last segment of the URL's path, when it looks like a file name."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if "." not in name or len(name) > uploads.MAX_FILE_NAME:
        return None
    try:
        return check_key(name)
    except InvalidKey:
        return None
