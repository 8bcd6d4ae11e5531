"""The playground at `/` in a real headless Chromium, against a live server with the motion engine.

Chromium is Debian's (`apt-get install chromium`, which `.ci/run` does); Playwright drives it and
never downloads a browser of its own.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
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


@pytest.fixture(autouse=True)
def _pages_closed(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test's pages close when it ends: a page left open (a video looping, a task polled)
    would take the CPU from every later test of the module."""
    yield
    browser = request.node.funcargs.get("browser")
    if browser is not None:
        for context in browser.contexts:
            context.close()


@pytest.fixture
def served(make_settings: MakeSettings, database_url: str) -> Iterator[Served]:
    """The whole service with one in-process worker and the default (motion) engine.

    The page is what these tests are about: the engine films flat, its quickest real video.
    """
    if not database_url.startswith("sqlite"):
        pytest.skip("browser tests run once, on SQLite")
    port = free_port()
    settings = make_settings(workers=1, public_url=f"http://127.0.0.1:{port}", motion_depth="off")
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


# The first hour: the result in view, camera commands said back, code that runs, runs kept.

#: Watches, on every frame from the press of Generate until the video plays, that the result
#: card's state badge is wholly inside the window.
WATCH_RESULT = """() => {
    const watch = { frames: 0, outside: [], playing: false };
    window.resultWatch = watch;
    const card = document.querySelector("#result");
    const badge = document.querySelector("#task-state");
    document.querySelector("#video").addEventListener("playing", () => { watch.playing = true; });
    document.querySelector("#submit").addEventListener("click", () => {
        const tick = () => {
            const box = badge.getBoundingClientRect();
            const shown = !document.querySelector("#task-view").hidden;
            watch.frames += 1;
            if (!shown || box.top < 0 || box.bottom > window.innerHeight) {
                const top = card.getBoundingClientRect().top;
                watch.outside.push({ shown, top: box.top, bottom: box.bottom, card: top });
            }
            if (!watch.playing) requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
    }, { capture: true });
}"""


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)])
def test_the_result_stays_in_view_from_generate_until_the_video_plays(
    browser: Browser, served: Served, tmp_path: Path, width: int, height: int
) -> None:
    page = new_page(browser, width, height)
    page.goto(served.base_url + "/")
    save_key(page, served.key)
    page.get_by_role("button", name="Try an example").click()
    expect(page.locator("#image-status")).to_contain_text("uploaded")
    expect(page.get_by_label("Prompt")).to_have_value(
        "[Push in, Pan right] A mountain lake at sunset, mist over the water"
    )
    expect(page.locator("#camera-plan")).to_have_text("Camera: Push in + Pan right")
    page.evaluate(WATCH_RESULT)

    submit = page.get_by_role("button", name="Generate video")
    submit.scroll_into_view_if_needed()
    submit.click()
    page.wait_for_function("() => window.resultWatch.playing", timeout=GENERATION_TIMEOUT_MS)
    watch = page.evaluate("window.resultWatch")
    assert watch["frames"] > 0
    assert watch["outside"] == [], watch["outside"][:5]

    video = page.locator("#video")
    assert page.evaluate(
        "(() => { const v = document.querySelector('#video'); return [v.muted, v.loop] })()"
    ) == [
        True,
        True,
    ]
    expect(video).to_be_in_viewport(ratio=1)
    expect(page.locator("#task-state")).to_have_text("success")
    expect(page.locator("#task-prompt")).to_have_text(
        "[Push in, Pan right] A mountain lake at sunset, mist over the water"
    )
    page.screenshot(path=tmp_path / f"result-{width}x{height}.png")


def test_an_unknown_camera_command_is_flagged_before_anything_is_sent(
    browser: Browser, served: Served
) -> None:
    page = new_page(browser)
    created: list[str] = []
    page.on("request", lambda request: created.append(request.url) if "/createTask" in request.url else None)
    page.goto(served.base_url + "/")
    save_key(page, served.key)
    page.get_by_role("button", name="Use the sample image").click()
    expect(page.locator("#image-status")).to_contain_text("uploaded")
    prompt = page.get_by_label("Prompt")
    prompt.fill("[Pan lft] a harbour at dawn")

    warnings = page.locator("#camera-warnings")
    expect(warnings).to_contain_text("[Pan lft] is not a camera command; did you mean [Pan left]?")
    expect(page.locator("#camera-plan")).to_have_text(
        "Camera: Push in (the default: no camera command found)"
    )
    page.get_by_role("button", name="Generate video").click()
    expect(page.locator("#form-error")).to_contain_text(
        "[Pan lft] is not a camera command, so the camera will not do what it says."
    )
    assert created == []

    page.get_by_role("button", name="Use [Pan left]").click()
    expect(prompt).to_have_value("[Pan left] a harbour at dawn")
    expect(warnings).to_be_hidden()
    expect(page.locator("#camera-plan")).to_have_text("Camera: Pan left")
    assert created == []


def _code(page: Page, language: str) -> str:
    page.get_by_role("tab", name=language).click()
    expect(page.get_by_role("tab", name=language)).to_have_attribute("aria-selected", "true")
    return page.locator("#code-text").inner_text()


def test_copy_as_code_gives_requests_that_work_when_run(
    browser: Browser, served: Served, tmp_path: Path
) -> None:
    page = new_page(browser)
    page.goto(served.base_url + "/")
    save_key(page, served.key)
    page.get_by_role("button", name="Use the sample image").click()
    expect(page.locator("#image-status")).to_contain_text("uploaded")
    page.get_by_label("Prompt").fill("[Tilt up] a copied request")
    page.get_by_role("radio", name="10 s").check()
    page.locator("#code-panel summary").click()
    expect(page.locator("#code-text")).to_contain_text('"duration":"10"')

    snippets = {language: _code(page, language) for language in ("curl", "Python", "JavaScript")}
    for text in snippets.values():
        assert served.key not in text
        assert "KINEMA_API_KEY" in text
    env = dict(os.environ, KINEMA_API_KEY=served.key)

    curl = subprocess.run(
        ["bash", "-c", snippets["curl"]], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    answer = json.loads(curl.stdout)
    assert answer["code"] == 200, answer
    with httpx.Client(base_url=served.base_url) as client:
        api = Api(client, served.key)
        record = api.wait_state(
            answer["data"]["taskId"], "success", "fail", timeout_s=GENERATION_TIMEOUT_MS / 1000
        )
    assert record["state"] == "success", record
    assert json.loads(record["param"])["input"] == {
        "prompt": "[Tilt up] a copied request",
        "image_url": json.loads(record["param"])["input"]["image_url"],
        "duration": "10",
        "resolution": "768P",
    }
    assert record["creditsConsumed"] == 50

    python = subprocess.run(
        [sys.executable, "-c", snippets["Python"]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=GENERATION_TIMEOUT_MS / 1000,
        check=False,
    )
    assert python.returncode == 0, python.stderr
    written = Path(python.stdout.strip())
    assert (tmp_path / written).read_bytes()[4:8] == b"ftyp"

    node = shutil.which("node")
    if node is None:
        return  # the curl and Python snippets ran; JavaScript needs Node.js 18 or later
    (tmp_path / "kinema.mjs").write_text(snippets["JavaScript"])
    ran = subprocess.run(
        [node, "kinema.mjs"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().startswith(served.base_url + "/files/")


def test_recent_runs_keep_their_settings_and_run_again(browser: Browser, served: Served) -> None:
    with httpx.Client(base_url=served.base_url) as client:
        api = Api(client, served.key)
        plain = seed_body(f"{served.base_url}/samples/sample.jpg", prompt="[Truck left] a plain request")
        del plain["input"]["duration"], plain["input"]["resolution"], plain["callBackUrl"]
        done = api.create(plain)
        stopped = api.create(seed_body(f"{served.base_url}/samples/sample.jpg", prompt="stopped"))
        assert api.post("/api/v1/jobs/cancel", {"taskId": stopped})["code"] == 200
        api.wait_state(done, "success", timeout_s=GENERATION_TIMEOUT_MS / 1000)

    page = new_page(browser)
    page.goto(served.base_url + "/")
    save_key(page, served.key)
    row = page.locator(f'#recent-list .task-item[data-task-id="{done}"]')
    expect(row).to_contain_text("6 s · 768P")
    canceled = page.locator(f'#recent-list .task-item[data-task-id="{stopped}"] .badge')
    expect(canceled).to_have_text("canceled")
    expect(canceled).to_have_class("badge canceled")

    page.get_by_label("Prompt").fill("another prompt in the form")
    row.click()
    expect(page.locator("#task-prompt")).to_have_text("[Truck left] a plain request")
    expect(page.locator("#task-image")).to_be_visible()
    page.wait_for_function("() => !document.querySelector('#video').paused")  # plays on its own, muted
    page.get_by_role("button", name="Use these settings again").click()
    expect(page.get_by_label("Prompt")).to_have_value("[Truck left] a plain request")
    expect(page.get_by_role("radio", name="6 s")).to_be_checked()
    expect(page.locator("#image-status")).to_contain_text("the task's own image")

    page.locator(f'#recent-list .task-item[data-task-id="{stopped}"]').click()
    expect(page.locator("#task-state")).to_have_text("canceled")
    expect(page.locator("#task-error")).to_contain_text("Canceled (499)")


def test_each_camera_chip_previews_its_move(browser: Browser, served: Served, tmp_path: Path) -> None:
    page = new_page(browser)
    page.goto(served.base_url + "/")
    chip = page.get_by_role("button", name="Insert [Pan left]")
    chip.hover()
    preview = page.locator("#chip-preview")
    expect(preview).to_be_visible()
    expect(preview).to_contain_text("Pan left")
    page.wait_for_function("() => document.querySelector('#chip-preview-image').naturalWidth === 160")
    page.get_by_role("button", name="Insert [Zoom in]").focus()
    expect(page.locator("#chip-preview-image")).to_have_attribute("src", "/playground/camera/zoom_in.webp")
    with httpx.Client(base_url=served.base_url) as client:
        answer = client.get("/playground/camera/pan_left.webp")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/webp"
        assert answer.content[:4] == b"RIFF"
        assert answer.content[8:12] == b"WEBP"
        assert len(answer.content) < 20_000
        assert client.get("/playground/camera/pan_sideways.webp").status_code == 404


def test_the_script_is_es_modules_served_as_they_are(served: Served) -> None:
    folder = Path(__file__).resolve().parents[2] / "src" / "kinema" / "api" / "playground"
    with httpx.Client(base_url=served.base_url) as client:
        page = client.get("/").text
        assert '<script type="module" src="/playground/app.js?v=' in page
        entry = client.get("/playground/app.js").text
        imported = sorted(set(re.findall(r'from "\./([a-z]+\.js)"', entry)))
        assert len(imported) >= 8, imported
        for name in imported:
            module = client.get(f"/playground/{name}")
            assert module.status_code == 200, name
            assert module.headers["content-type"] == "text/javascript; charset=utf-8"
            assert module.headers["cache-control"] == "no-cache"  # revalidated: 304 while unchanged
            assert module.content == (folder / name).read_bytes()  # as they are: no build step
            assert (
                client.get(
                    f"/playground/{name}", headers={"If-None-Match": module.headers["etag"]}
                ).status_code
                == 304
            )
        for name in ("index.html", "../routes/playground.py", ".hidden.js", "nothing.js"):
            assert client.get(f"/playground/{name}").status_code == 404, name
