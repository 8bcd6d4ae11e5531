"""The whole service with its files in S3 (moto on loopback): uploads, a task's result, its links
(presigned and through this server), retention, and S3 being down."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

import httpx
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.clock import DAY_MS, FakeClock
from tests.support.s3_server import S3Server, unreachable_endpoint
from tests.support.service import Running, running_app

from kinema import runtime
from kinema.files import retention
from kinema.files.retention import RetentionPolicy
from kinema.store.database import Database

POLICY = RetentionPolicy(result_ms=14 * DAY_MS, task_ms=60 * DAY_MS)
VIDEO = b"\x00\x00\x00\x18ftypisom placeholder video"  # what the instant engine writes


def _upload(service: Running, data: bytes, name: str) -> dict[str, Any]:
    answer = service.api.post(
        "/api/file-base64-upload",
        {"base64Data": base64.b64encode(data).decode(), "uploadPath": "r", "fileName": name},
    )
    assert answer["success"], answer
    upload: dict[str, Any] = answer["data"]
    return upload


def _video_link(record: dict[str, Any]) -> str:
    link: str = json.loads(record["resultJson"])["resultUrls"][0]
    return link


def _through_service(service: Running, url: str, **headers: str) -> httpx.Response:
    link = urlsplit(url)
    return service.client.get(f"{link.path}?{link.query}", headers=headers)


def _sweep_all(settings: Any, now: int) -> retention.SweepReport:
    db = Database(settings.database_url)
    try:
        return retention.sweep(db, runtime.open_store(settings), now, POLICY)
    finally:
        db.dispose()


def test_presigned_links_the_bucket_serves_from_upload_to_retention(
    make_settings: MakeSettings, s3: S3Server, sample_jpeg: bytes
) -> None:
    bucket = s3.new_bucket()
    clock = FakeClock()
    # Private addresses refused: the bucket's links on loopback are read as this server's own.
    settings = make_settings(workers=1, allow_private_urls=False, **s3.settings(bucket, s3_prefix="kinema"))
    with running_app(settings, clock=clock) as service:
        upload = _upload(service, sample_jpeg, "cat.jpg")
        assert upload["downloadUrl"].startswith(f"{s3.endpoint_url}/{bucket}/kinema/uploads/")
        assert httpx.get(upload["downloadUrl"]).content == sample_jpeg

        task_id = service.api.create(seed_body(upload["downloadUrl"]))
        record = service.api.wait_state(task_id, "success")
        video = _video_link(record)
        assert video.startswith(f"{s3.endpoint_url}/{bucket}/kinema/results/{service.account_id}/{task_id}/")
        assert httpx.get(video).content == VIDEO
        assert httpx.get(record["firstFrameUrl"]).status_code == 200
        assert s3.keys(bucket, f"kinema/results/{service.account_id}/{task_id}/") == [
            f"kinema/results/{service.account_id}/{task_id}/1/{name}"
            for name in ("first.jpg", "last.jpg", "video.mp4")
        ]
        assert s3.keys(bucket, f"kinema/inputs/{service.account_id}/{task_id}/") == [
            f"kinema/inputs/{service.account_id}/{task_id}/image.jpg"
        ]
        fresh = service.api.post("/api/v1/common/download-url", {"url": video})
        assert fresh["code"] == 200, fresh
        assert httpx.get(fresh["data"]).content == VIDEO
        other = service.open_account()
        refused = other.post("/api/v1/common/download-url", {"url": video})
        assert refused["code"] == 422

        clock.advance(15 * DAY_MS)
        report = _sweep_all(settings, clock())
        assert (report.uploads, report.task_files) == (1, 1)
        assert s3.keys(bucket) == []
        assert httpx.get(video).status_code == 404
        assert service.api.record(task_id)["state"] == "success"  # the record stays


def test_links_through_the_service_stream_from_a_private_bucket(
    make_settings: MakeSettings, s3: S3Server, sample_jpeg: bytes
) -> None:
    bucket = s3.new_bucket()
    clock = FakeClock()
    settings = make_settings(workers=1, **s3.settings(bucket, s3_links="proxy"))
    with running_app(settings, clock=clock) as service:
        upload = _upload(service, sample_jpeg, "cat.jpg")
        assert upload["downloadUrl"].startswith(f"{settings.public_url}/files/uploads/")
        assert _through_service(service, upload["downloadUrl"]).content == sample_jpeg

        task_id = service.api.create(seed_body(upload["downloadUrl"]))
        video = _video_link(service.api.wait_state(task_id, "success"))
        assert video.startswith(f"{settings.public_url}/files/results/")
        whole = _through_service(service, video)
        assert (whole.status_code, whole.content) == (200, VIDEO)
        assert whole.headers["content-type"] == "video/mp4"
        assert (
            whole.headers["etag"]
            == s3.client().head_object(Bucket=bucket, Key=urlsplit(video).path[7:])["ETag"]
        )
        part = _through_service(service, video, Range="bytes=4-11")
        assert (part.status_code, part.content) == (206, VIDEO[4:12])
        assert part.headers["content-range"] == f"bytes 4-11/{len(VIDEO)}"
        tail = _through_service(service, video, Range="bytes=-5")
        assert (tail.status_code, tail.content) == (206, VIDEO[-5:])
        assert _through_service(service, video, Range=f"bytes={len(VIDEO)}-").status_code == 416
        assert _through_service(service, video, **{"If-None-Match": whole.headers["etag"]}).status_code == 304

        clock.advance(15 * DAY_MS)
        _sweep_all(settings, clock())
        assert s3.keys(bucket) == []
        assert _through_service(service, video).status_code == 410


def test_an_s3_outage_answers_503_with_a_reason_and_stores_nothing(
    make_settings: MakeSettings, s3: S3Server, sample_jpeg: bytes
) -> None:
    bucket = s3.new_bucket()
    down = s3.settings(bucket, s3_endpoint_url=unreachable_endpoint(), s3_links="proxy")
    settings = make_settings(**down)
    with running_app(settings) as service:
        answer = service.client.post(
            "/api/file-base64-upload",
            json={"base64Data": base64.b64encode(sample_jpeg).decode(), "uploadPath": "r"},
            headers=service.api.headers,
        )
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "5"
        assert answer.json() == {
            "success": False,
            "code": 503,
            "msg": "the file storage cannot be reached; try again in a moment",
            "data": None,
        }
        link = service.app.state.services.signer.signed_url(
            settings.public_url, f"uploads/{service.account_id}/r/cat.jpg", 2**31
        )
        served = _through_service(service, link)
        assert served.status_code == 503
        assert served.json()["msg"] == "the file storage cannot be reached; try again in a moment"
        created = service.api.post("/api/v1/jobs/createTask", seed_body(link))
        assert created["code"] == 503, created
        assert service.api.balance() == 1000  # nothing charged
