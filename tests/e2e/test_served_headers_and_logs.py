"""`kinema serve` as the public meets it: the headers on every answer, and logs that never hold
a key, a webhook secret or a signed link, even at DEBUG."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from tests.support.api import Api, seed_body
from tests.support.http import callback_receiver
from tests.support.polling import wait_for
from tests.support.process import kinema, serve, service_env


def _new_key(data_dir: Path, database_url: str) -> str:
    done = kinema(
        "keys", "create", "--name", "e2e", "--credits", "1000", env=service_env(data_dir, database_url, 0)
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _signatures(text: str) -> set[str]:
    """The signatures of every link of this server in `text`."""
    found: set[str] = set()
    for link in re.findall(r"https?://[^\s\"'\\]+", text):
        found.update(parse_qs(urlsplit(link).query).get("signature", []))
    return found


def _check_headers(answer: httpx.Response) -> httpx.Response:
    assert answer.headers.get("x-content-type-options") == "nosniff", answer.request.url
    assert "server" not in answer.headers, answer.request.url
    return answer


def _raw_bad_request(base_url: str) -> bytes:
    """What the server itself answers to a request line it cannot read."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(b"NOT A REQUEST\r\n\r\n")
        return connection.recv(4096)


def test_a_full_run_shows_no_secret_in_the_logs_and_every_answer_its_headers(
    tmp_path: Path, database_url: str, sample_jpeg: bytes
) -> None:
    data_dir = tmp_path / "data"
    settings = {"KINEMA_ALLOW_PRIVATE_URLS": "true", "KINEMA_LOG_LEVEL": "DEBUG"}
    secrets: set[str] = set()
    links: set[str] = set()
    with callback_receiver() as receiver, serve(data_dir, database_url, **settings) as served:
        key = _new_key(data_dir, database_url)
        secrets.add(key)
        with httpx.Client(base_url=served.base_url, timeout=30) as client:
            api = Api(client, key)
            check = _check_headers
            uploaded = check(
                client.post(
                    "/api/file-stream-upload",
                    files={"file": ("knights.jpg", sample_jpeg)},
                    data={"uploadPath": "inputs"},
                    headers=api.headers,
                )
            ).json()["data"]
            links.add(uploaded["downloadUrl"])
            check(client.get(uploaded["downloadUrl"]))
            secrets.add(
                check(client.get("/api/v1/webhooks/secret", headers=api.headers)).json()["data"]["secret"]
            )

            body = seed_body(uploaded["downloadUrl"]) | {"callBackUrl": receiver.url}
            task_id = check(client.post("/api/v1/jobs/createTask", json=body, headers=api.headers)).json()[
                "data"
            ]["taskId"]
            record = api.wait_state(task_id, "success", "fail", timeout_s=120)
            assert record["state"] == "success", (record, served.output())
            check(client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}, headers=api.headers))
            result = json.loads(record["resultJson"])
            links.update([*result["resultUrls"], record["firstFrameUrl"], record["lastFrameUrl"]])
            check(client.get(result["resultUrls"][0], headers={"Range": "bytes=0-99"}))
            wait_for(lambda: receiver.accepted(), 60, "the callback")
            links.update(re.findall(r"https?://[^\s\"'\\]+", receiver.accepted()[0].body.decode()))

            rotated = check(client.post("/api/v1/webhooks/secret/rotate", headers=api.headers)).json()["data"]
            secrets.add(rotated["secret"])
            fresh = check(
                client.post(
                    "/api/v1/common/download-url", json={"url": uploaded["downloadUrl"]}, headers=api.headers
                )
            ).json()["data"]
            links.add(fresh)
            check(client.get(fresh))
            check(client.get(fresh.replace("signature=", "signature=0")))  # 403
            check(client.get("/api/v1/jobs/list", headers=api.headers))
            check(client.get("/api/v1/chat/credit"))  # 401
            check(client.get("/no/such/route"))  # 404
            check(client.get("/"))
            check(client.get("/docs"))
            check(client.get("/openapi.json"))
            check(client.get("/healthz"))
            check(client.get("/readyz"))
            check(client.get("/metrics"))
        raw = _raw_bad_request(served.base_url)
        # uvicorn's own answer to a request it cannot read carries no banner either.
        assert raw.startswith(b"HTTP/1.1 400"), raw
        assert b"\r\nserver:" not in raw.lower()

    log = served.output()
    signatures = _signatures(" ".join(links))
    assert len(signatures) >= 5
    assert " DEBUG " in log  # the whole run was logged at DEBUG
    assert "GET /files/" in log  # the file links were logged, without what makes them work
    leaked = [secret for secret in secrets | signatures if secret in log]
    assert leaked == [], [line for line in log.splitlines() if any(secret in line for secret in leaked)][:5]
