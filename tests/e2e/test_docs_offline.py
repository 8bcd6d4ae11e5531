"""`/docs` renders in a real Chromium with every request on the server itself, and `/llms.txt`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from tests.conftest import MakeSettings
from tests.support.live import free_port, live_server

from kinema.api.app import create_app

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def base_url(make_settings: MakeSettings, database_url: str) -> Iterator[str]:
    if not database_url.startswith("sqlite"):
        pytest.skip("browser tests run once, on SQLite")
    port = free_port()
    settings = make_settings(public_url=f"http://127.0.0.1:{port}")
    with live_server(create_app(settings), port=port) as url:
        yield url


def test_docs_load_with_no_request_leaving_the_machine(base_url: str) -> None:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("browser tests need Debian's chromium (apt-get install chromium; .ci/run installs it)")
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(base_url + "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Kinema")
            expect(page.locator(".swagger-ui")).to_contain_text("/api/v1/jobs/createTask")
            expect(page.get_by_role("button", name="Authorize")).to_be_visible()
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()
    assert f"{base_url}/docs/assets/swagger-ui-bundle.js" in requests
    assert f"{base_url}/openapi.json" in requests
    assert [url for url in requests if not url.startswith(base_url + "/")] == []


def test_docs_assets_come_from_the_installed_package(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "cdn" not in page.text.lower()
        script = client.get("/docs/assets/swagger-ui-bundle.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "SwaggerUIBundle" in script.text
        assert client.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
        assert client.get("/docs/assets/redoc.standalone.js").status_code == 404
        assert client.get("/redoc").status_code == 404


def test_llms_txt_is_a_plain_text_guide_with_this_servers_address(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        answer = client.get("/llms.txt")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    for word in ("createTask", "recordInfo", "Authorization: Bearer", "file-stream-upload", "401", "curl"):
        assert word in answer.text
    assert f"BASE={base_url}" in answer.text
    assert "{{BASE_URL}}" not in answer.text
