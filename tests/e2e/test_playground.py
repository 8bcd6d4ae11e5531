"""The playground at `/` in a real headless Chromium, against a live server with the motion engine.

Chromium is Debian's (`apt-get install chromium`, which `.ci/run` does); Playwright drives it and
never downloads a browser of its own.
"""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from tests.conftest import MakeSettings
from tests.support.api import Api, seed_body
from tests.support.live import free_port, live_server

from kinema.accounts import keys
from kinema.api.app import create_app
from kinema.domain.clock import system_clock
from kinema.store.database import Database

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REFUSED = "The API key was refused (401): You do not have access permissions"
#: A 6 s clip at 768P from the motion engine takes seconds; a slow CI machine gets room.
GENERATION_TIMEOUT_MS = 180_000


@dataclass
class Served:
    base_url: str
    key: str


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("browser tests need Debian's chromium (apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def served(make_settings: MakeSettings, database_url: str) -> Iterator[Served]:
    """The whole service with one in-process worker and the default (motion) engine."""
    if not database_url.startswith("sqlite"):
        pytest.skip("browser tests run once, on SQLite")
    port = free_port()
    settings = make_settings(workers=1, public_url=f"http://127.0.0.1:{port}")
    db = Database(database_url)
    with db.write() as connection:
        key = keys.open_account(connection, "playground", 1000, system_clock()).secret
    db.dispose()
    with live_server(create_app(settings), port=port) as base_url:
        yield Served(base_url, key)
    gc.collect()  # so that a dropped download's file (see pytestmark) is reported within this test


def new_page(browser: Browser, width: int = 1280, height: int = 900) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    return context.new_page()


def on_origin(url: str, base_url: str) -> bool:
    """Whether a request stays on the server (a blob: URL is the page's own memory)."""
    return url.removeprefix("blob:").startswith(base_url + "/")


def save_key(page: Page, key: str) -> None:
    page.get_by_role("textbox", name="API key").fill(key)
    page.get_by_role("button", name="Save key").click()


def test_a_video_from_the_playground(
    browser: Browser, served: Served, tmp_path: Path, sample_jpeg: bytes
) -> None:
    page = new_page(browser)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(served.base_url + "/")

    # A wrong key is refused, readably, and not kept.
    save_key(page, "kn_not-a-key-of-this-server")
    expect(page.locator("#key-error")).to_have_text(REFUSED)
    assert page.evaluate("localStorage.length") == 0

    save_key(page, served.key)
    expect(page.locator("#balance")).to_have_text("1,000")
    expect(page.locator("#key-panel")).to_be_hidden()

    image = tmp_path / "lake.jpg"
    image.write_bytes(sample_jpeg)
    page.set_input_files("#image-input", image)
    expect(page.locator("#image-status")).to_contain_text("640 \N{MULTIPLICATION SIGN} 360")
    expect(page.locator("#image-status")).to_contain_text("uploaded")
    expect(page.locator("#preview")).to_be_visible()

    prompt = page.get_by_label("Prompt")
    prompt.fill("A mountain lake at sunset")
    prompt.press("Home")  # the camera command goes where the cursor is
    page.get_by_role("button", name="Insert [Push in]").click()
    expect(prompt).to_have_value("[Push in] A mountain lake at sunset")

    # 10 s is not offered at 1080P: choosing one moves the other.
    page.get_by_role("radio", name="10 s").check()
    page.get_by_role("radio", name="1080P").check()
    expect(page.get_by_role("radio", name="6 s")).to_be_checked()
    expect(page.locator("#combo-note")).to_contain_text("the duration is now 6 s")
    page.get_by_role("radio", name="768P").check()
    expect(page.locator("#price")).to_have_text("30 credits")

    page.get_by_role("button", name="Generate video").click()
    state = page.locator("#task-state")
    expect(state).not_to_have_text("waiting", timeout=30_000)
    expect(state).to_have_text("success", timeout=GENERATION_TIMEOUT_MS)
    expect(page.locator("#task-progress")).to_have_attribute("value", "100")
    expect(page.locator("#task-percent")).to_have_text("100%")

    duration = page.evaluate(
        """() => new Promise((resolve, reject) => {
            const video = document.querySelector("#video");
            // Metadata gives the duration; waiting until it can play makes the screenshot show the clip.
            if (video.readyState >= 3) return resolve(video.duration);
            video.addEventListener("canplay", () => resolve(video.duration), { once: true });
            video.addEventListener("error", () => reject(new Error("no video")), { once: true });
        })"""
    )
    assert duration == pytest.approx(6.0, abs=0.3)
    download = page.get_by_role("link", name="Download MP4")
    expect(download).to_be_visible()
    assert download.get_attribute("download", timeout=1000)
    assert download.get_attribute("href") == page.evaluate('document.querySelector("#video").currentSrc')

    expect(page.locator("#balance")).to_have_text("970")
    recent = page.locator("#recent-list .task-item")
    expect(recent).to_have_count(1)
    expect(recent.first).to_contain_text("[Push in] A mountain lake at sunset")
    expect(recent.first).to_contain_text("success")
    expect(recent.first).to_have_attribute("aria-current", "true")

    # A frame from the middle of the clip, once the player has it, for the screenshot.
    page.evaluate(
        """() => new Promise((resolve) => {
            const video = document.querySelector("#video");
            video.addEventListener("seeked", resolve, { once: true });
            video.currentTime = 3;
        })"""
    )
    page.mouse.move(0, 0)
    # Chromium's own player fades its loading spinner out over about a second, and no event marks
    # the end of that: a fixed pause, for the picture only (nothing is asserted on it).
    page.wait_for_timeout(1500)
    screenshot = tmp_path / "playground.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    assert screenshot.stat().st_size > 10_000

    # The live stream was followed (fetch with the key; EventSource cannot send it), and no
    # request left this server.
    assert any("/api/v1/jobs/stream?taskId=" in url for url in requests)
    assert [url for url in requests if not on_origin(url, served.base_url)] == []


def test_without_the_stream_the_page_polls_and_the_recent_list_shows_each_result(
    browser: Browser, served: Served
) -> None:
    with httpx.Client(base_url=served.base_url) as client:
        api = Api(client, served.key)
        body = seed_body(f"http://127.0.0.1:{free_port()}/gone.jpg", prompt="[Shake] gone")
        del body["callBackUrl"]
        broken = api.create(body)
        api.wait_state(broken, "fail")

    page = new_page(browser)
    page.route("**/api/v1/jobs/stream?*", lambda route: route.abort())  # a proxy that cuts streams
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/recordInfo?" in request.url else None)
    page.goto(served.base_url + "/")
    save_key(page, served.key)
    page.get_by_role("button", name="Use the sample image").click()
    expect(page.locator("#image-status")).to_contain_text("uploaded")
    page.get_by_label("Prompt").fill("[Static shot] the sample")
    page.get_by_role("button", name="Generate video").click()
    expect(page.locator("#task-state")).to_have_text("success", timeout=GENERATION_TIMEOUT_MS)
    expect(page.get_by_role("link", name="Download MP4")).to_be_visible()
    assert polls, "the page polls recordInfo when the stream fails"

    items = page.locator("#recent-list .task-item")
    expect(items).to_have_count(2)
    failed = page.locator(f'#recent-list .task-item[data-task-id="{broken}"]')
    failed.click()
    expect(failed).to_have_attribute("aria-current", "true")
    expect(page.locator("#task-state")).to_have_text("fail")
    expect(page.locator("#task-error")).to_contain_text("The input was refused (422): input.image_url")
    expect(page.locator("#task-detail")).to_contain_text("nothing charged")
    expect(page.locator("#player")).to_be_hidden()

    items.first.click()
    expect(page.locator("#task-state")).to_have_text("success")
    expect(page.locator("#player")).to_be_visible()
    expect(page.locator("#task-error")).to_be_hidden()


def test_the_page_fits_a_phone_and_forgets_the_key(browser: Browser, served: Served) -> None:
    page = new_page(browser, 390, 844)
    page.goto(served.base_url + "/")
    save_key(page, served.key)
    expect(page.locator("#balance")).to_have_text("1,000")

    submit = page.get_by_role("button", name="Generate video")
    submit.scroll_into_view_if_needed()
    expect(submit).to_be_visible()
    box = submit.bounding_box()
    assert box is not None
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= 390, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # Submitting without an image says what is missing.
    submit.click()
    expect(page.locator("#form-error")).to_have_text("Choose an image first.")

    page.get_by_role("button", name="Forget key").click()
    expect(page.get_by_role("textbox", name="API key")).to_be_visible()
    assert page.evaluate("localStorage.length") == 0
    page.reload()
    expect(page.locator("#key-panel")).to_be_visible()


def test_the_page_and_its_assets_are_served_with_types_and_caching(served: Served) -> None:
    with httpx.Client(base_url=served.base_url) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-cache"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert client.get("/", headers={"If-None-Match": page.headers["etag"]}).status_code == 304

        for name, media_type in (("app.js", "text/javascript"), ("style.css", "text/css")):
            marker = f"/playground/{name}?v="
            assert marker in page.text
            versioned = page.text.split(marker, 1)[1].split('"', 1)[0]
            asset = client.get(f"/playground/{name}", params={"v": versioned})
            assert asset.status_code == 200
            assert asset.headers["content-type"].startswith(media_type)
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert client.get(f"/playground/{name}").headers["cache-control"] == "no-cache"
        assert client.get("/playground/index.html").status_code == 404
