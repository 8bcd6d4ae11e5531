"""The upload API, download links, and uploaded images as task inputs, through HTTP."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest
from tests.conftest import MakeSettings
from tests.support.api import Api, seed_body
from tests.support.http import ImageHost
from tests.support.service import Running, running_app

STREAM = "/api/file-stream-upload"
BY_URL = "/api/file-url-upload"
BASE64 = "/api/file-base64-upload"


@pytest.fixture
def service(make_settings: MakeSettings) -> Iterator[Running]:
    with running_app(make_settings(upload_max_bytes=200_000, allow_private_urls=False)) as running:
        yield running


def _png(width: int, height: int) -> bytes:
    ok, encoded = cv2.imencode(".png", np.full((height, width, 3), 90, np.uint8))
    assert ok
    return encoded.tobytes()


def _stream(
    api: Api,
    data: bytes,
    upload_path: str | None = "images",
    file_name: str | None = None,
    filename: str = "photo.jpg",
) -> dict[str, Any]:
    fields = {
        key: value
        for key, value in (("uploadPath", upload_path), ("fileName", file_name))
        if value is not None
    }
    response = api.client.post(
        STREAM, files={"file": (filename, data, "application/octet-stream")}, data=fields, headers=api.headers
    )
    answer: dict[str, Any] = response.json()
    return answer


def _download(service: Running, url: str, **headers: str) -> Any:
    link = urlsplit(url)
    return service.client.get(f"{link.path}?{link.query}", headers=headers)


def _assert_uploaded(
    answer: dict[str, Any], file_name: str, file_path: str, data: bytes, mime_type: str
) -> None:
    assert answer["success"] is True
    assert answer["code"] == 200
    assert answer["msg"] == "File uploaded successfully"
    got = answer["data"]
    assert set(got) == {"fileName", "filePath", "downloadUrl", "fileSize", "mimeType", "uploadedAt"}
    assert (got["fileName"], got["filePath"], got["fileSize"], got["mimeType"]) == (
        file_name,
        file_path,
        len(data),
        mime_type,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", got["uploadedAt"])


def test_the_three_ways_to_upload(service: Running, sample_jpeg: bytes) -> None:
    streamed = _stream(service.api, sample_jpeg, "images/2026", "cat.jpg")
    _assert_uploaded(streamed, "cat.jpg", "images/2026/cat.jpg", sample_jpeg, "image/jpeg")
    assert _download(service, streamed["data"]["downloadUrl"]).content == sample_jpeg

    png = _png(400, 400)
    encoded = service.api.post(
        BASE64, {"base64Data": base64.b64encode(png).decode(), "uploadPath": "b64", "fileName": "square.png"}
    )
    _assert_uploaded(encoded, "square.png", "b64/square.png", png, "image/png")
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    unnamed = service.api.post("/file-upload" + BASE64, {"base64Data": data_url, "uploadPath": "b64"})
    assert unnamed["success"] is True
    assert re.fullmatch(r"[0-9a-f]{16}\.png", unnamed["data"]["fileName"])

    # A URL of this server is read locally, so even with private addresses refused it works.
    again = service.api.post(BY_URL, {"fileUrl": streamed["data"]["downloadUrl"], "uploadPath": "copies"})
    _assert_uploaded(again, "cat.jpg", "copies/cat.jpg", sample_jpeg, "image/jpeg")


def test_upload_by_url_from_another_host(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/pictures/harbour.jpg", sample_jpeg)
    with running_app(make_settings()) as service:
        answer = service.api.post("/file-upload" + BY_URL, {"fileUrl": url, "uploadPath": "web"})
        _assert_uploaded(answer, "harbour.jpg", "web/harbour.jpg", sample_jpeg, "image/jpeg")


REFUSALS: list[tuple[str, str, dict[str, Any], str]] = [
    ("missing uploadPath", BASE64, {"base64Data": "aGVsbG8="}, "uploadPath is required"),
    (
        "bad base64",
        BASE64,
        {"base64Data": "not base64 at all!", "uploadPath": "x"},
        "base64Data is not valid base64",
    ),
    (
        "text named .png",
        BASE64,
        {"base64Data": base64.b64encode(b"hello there").decode(), "uploadPath": "x", "fileName": "fake.png"},
        "the file's type is not recognised",
    ),
    ("traversal in uploadPath", BASE64, {"base64Data": "", "uploadPath": "../other"}, "uploadPath"),
    ("absolute uploadPath", BASE64, {"base64Data": "", "uploadPath": "/etc"}, "uploadPath"),
    ("deep traversal", BASE64, {"base64Data": "", "uploadPath": "a/../../b"}, "uploadPath"),
    (
        "traversal in fileName",
        BASE64,
        {"base64Data": "", "uploadPath": "x", "fileName": "../../x.png"},
        "fileName",
    ),
    ("private URL", BY_URL, {"fileUrl": "http://127.0.0.1:9/x.png", "uploadPath": "x"}, "private"),
    ("metadata URL", BY_URL, {"fileUrl": "http://169.254.169.254/latest", "uploadPath": "x"}, "fileUrl"),
    ("non-http URL", BY_URL, {"fileUrl": "file:///etc/passwd", "uploadPath": "x"}, "fileUrl"),
]


@pytest.mark.parametrize(("case", "route", "body", "message"), REFUSALS, ids=[case for case, *_ in REFUSALS])
def test_refusals(
    service: Running, sample_jpeg: bytes, case: str, route: str, body: dict[str, Any], message: str
) -> None:
    if body.get("base64Data") == "":
        body = body | {"base64Data": base64.b64encode(sample_jpeg).decode()}
    answer = service.api.post(route, body)
    assert answer["success"] is False, case
    assert answer["code"] == 422
    assert message in answer["msg"]


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        # A lone surrogate: JSON can carry one, no URL can.
        ("http://images.example/\udcff.png", "fileUrl is not a valid URL"),
        ("http://[fe80::1%25et\u00e9]/", "fileUrl has an invalid IPv6 address"),
    ],
    ids=["lone surrogate", "zone index not in ASCII"],
)
def test_a_url_that_cannot_be_encoded_is_refused_in_words(service: Running, url: str, refusal: str) -> None:
    # Each once made upload by URL answer 500.
    body = json.dumps({"fileUrl": url, "uploadPath": "x"})
    response = service.client.post(
        BY_URL, content=body, headers=service.api.headers | {"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    answer = response.json()
    assert (answer["success"], answer["code"], answer["data"]) == (False, 422, None)
    assert answer["msg"].startswith(refusal)


def test_stream_refusals(service: Running, sample_jpeg: bytes) -> None:
    assert "uploadPath is required" in _stream(service.api, sample_jpeg, upload_path=None)["msg"]
    too_big = _stream(service.api, sample_jpeg + bytes(200_000))
    assert (too_big["success"], too_big["code"]) == (False, 422)
    assert "larger than" in too_big["msg"]
    assert "type" in _stream(service.api, b"%!PS-Adobe-3.0 not an image", filename="x.png")["msg"]
    assert "fileName" in _stream(service.api, sample_jpeg, file_name="../escape.jpg")["msg"]
    no_file = service.api.client.post(STREAM, data={"uploadPath": "x"}, headers=service.api.headers).json()
    assert (no_file["success"], no_file["code"]) == (False, 422)
    unauthorized = service.client.post(
        STREAM, files={"file": ("a.jpg", sample_jpeg)}, data={"uploadPath": "x"}
    )
    assert unauthorized.json() == {
        "success": False,
        "code": 401,
        "msg": "You do not have access permissions",
        "data": None,
    }


def test_accounts_have_separate_spaces(service: Running, sample_jpeg: bytes) -> None:
    mine = _stream(service.api, sample_jpeg, "images", "cat.jpg")["data"]
    other = service.open_account()
    replacement = _png(500, 500)
    theirs = _stream(other, replacement, "images", "cat.jpg")["data"]
    assert theirs["filePath"] == mine["filePath"]
    assert _download(service, mine["downloadUrl"]).content == sample_jpeg
    assert _download(service, theirs["downloadUrl"]).content == replacement
    # Re-uploading replaces the file for that account only.
    newer = _png(600, 600)
    _stream(service.api, newer, "images", "cat.jpg")
    assert _download(service, mine["downloadUrl"]).content == newer
    assert _download(service, theirs["downloadUrl"]).content == replacement
    # Nobody gets a fresh link to someone else's file.
    refused = other.post("/api/v1/common/download-url", {"url": mine["downloadUrl"]})
    assert refused["code"] == 422


def test_upload_then_create_task_then_success(make_settings: MakeSettings, sample_jpeg: bytes) -> None:
    with running_app(make_settings(workers=1, allow_private_urls=False)) as service:
        uploaded = _stream(service.api, sample_jpeg, "inputs", "knights.jpg")["data"]
        task_id = service.api.create(seed_body(uploaded["downloadUrl"]))
        assert service.api.record(task_id)["state"] in ("queuing", "generating", "success")
        record = service.api.wait_state(task_id, "success", "fail")
        assert record["state"] == "success", record
        video_url = json.loads(record["resultJson"])["resultUrls"][0]

        whole = _download(service, video_url, Range="bytes=0-")
        assert whole.status_code == 206
        assert whole.headers["content-range"].startswith("bytes 0-")
        size = int(whole.headers["content-range"].rsplit("/", 1)[1])
        middle = _download(service, video_url, Range="bytes=10-19")
        assert middle.status_code == 206
        assert middle.content == whole.content[10:20]
        assert middle.headers["content-range"] == f"bytes 10-19/{size}"

        fresh = service.api.post("/api/v1/common/download-url", {"url": video_url})
        assert fresh["code"] == 200
        assert _download(service, fresh["data"]).status_code == 200
        elsewhere = service.api.post("/api/v1/common/download-url", {"url": "https://example.com/x.mp4"})
        assert elsewhere["code"] == 422

        tampered = video_url.replace("signature=", "signature=x")
        assert _download(service, tampered).status_code == 403


def test_a_bad_uploaded_image_is_refused_at_create_task(service: Running) -> None:
    tiny = service.api.post(
        BASE64, {"base64Data": base64.b64encode(_png(120, 120)).decode(), "uploadPath": "x"}
    )
    answer = service.api.post("/api/v1/jobs/createTask", seed_body(tiny["data"]["downloadUrl"]))
    assert answer["code"] == 422
    assert answer["msg"].startswith("input.image_url: image short side is 120 px")
    assert service.api.balance() == 1000
    assert service.api.get("/api/v1/jobs/list")["data"]["tasks"] == []
    forged = service.api.post(
        "/api/v1/jobs/createTask", seed_body(service.settings.public_url + "/files/x.jpg")
    )
    assert forged["code"] == 422
