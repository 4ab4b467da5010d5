"""`spiral serve` used as a person would, in a real headless browser: Debian's chromium driven by
Playwright (no browser download). Two tabs run two episodes through the queue; the second is
cancelled; the first is reopened from the list; bad input gets its message in the page."""

import http.client
import json
import os
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image
from serve_helpers import GOAL, SCENE, Server

from spiral.journal import Journal

CHROMIUM = "/usr/bin/chromium"
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "serve.png"
# Records the order in which plans and clips enter the page, as the DOM sees it.
WATCH = """
window.seen = [];
new MutationObserver((changes) => {
  for (const change of changes) for (const node of change.addedNodes)
    if (node.classList && (node.classList.contains("plan") || node.classList.contains("attempt"))) window.seen.push(node.className);
}).observe(document, { childList: true, subtree: true });
"""
SECONDS = 1000  # Playwright's timeouts are in milliseconds


@pytest.fixture
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"headless Chromium is needed for this test and {CHROMIUM} is missing: run `make chromium` (Debian's package)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path, weights):
    server = Server(tmp_path / "root", "--world-model-path", str(weights))
    yield server
    assert server.stop() == 0


def fill_run(page, url: str, tries: int, replans: int, generations: int) -> None:
    page.goto(url)
    page.fill("#seed", str(SCENE))
    wait_until(page, "document.querySelector('#start-thumb').src.endsWith('/api/scene/4.png')")
    page.fill("#goal", GOAL)
    page.select_option("#planner", "symbolic")
    page.select_option("#critic", "oracle")
    for name, value in (("max_tries", tries), ("max_replans", replans), ("max_generations", generations)):
        page.fill(f"#{name}", str(value))


def wait_until(page, script: str, seconds: float = 30):
    """Poll `script` in the page until it is truthy. (Playwright's wait_for_function evaluates a
    string inside the page, which the page's Content-Security-Policy forbids, as it should.)"""
    deadline = time.monotonic() + seconds
    while not (value := page.evaluate(script)):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {seconds} s: {script}")
        page.wait_for_timeout(100)
    return value


def first_video_plays(page, selector: str) -> float:
    return wait_until(
        page, f"document.querySelector('{selector}')?.duration > 0 && document.querySelector('{selector}').duration"
    )


def raw_get(url: str, path: str) -> tuple[int, str]:
    """A GET sent exactly as written (no client-side clean-up of `..`)."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    return response.status, response.read().decode(errors="replace")


def test_run_watch_cancel_and_reopen_in_a_browser(browser, server, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    first, second = context.new_page(), context.new_page()
    first.add_init_script(WATCH)
    requested, console = [], []
    first.on("request", lambda request: requested.append(request.url))
    first.on("console", lambda message: console.append(message.text))

    # Tab 1: a short episode. Tab 2, at once: a long one, queued behind it (one run at a time).
    fill_run(first, server.url, tries=1, replans=1, generations=3)
    assert wait_until(first, "document.querySelector('#start-thumb').naturalWidth") == 256
    first.click("#run")
    fill_run(second, server.url, tries=10, replans=10, generations=100)
    second.click("#run")
    wait_until(second, "document.querySelector('#state').textContent.startsWith('queued')", 10)

    # Tab 1 follows its run live: the plan comes before the first clip, every clip plays, the judge speaks.
    first.wait_for_selector("#verdict:has-text('Goal achieved')", timeout=90 * SECONDS)
    seen = first.evaluate("window.seen")
    assert seen[0] == "plan" and "attempt" in seen[1:], seen
    assert first.locator(".attempt").count() == 3 and first.locator(".plan").count() == 2
    assert first_video_plays(first, ".attempt video") > 0
    assert first_video_plays(first, "#final-video") > 0
    assert "score 0.00 · local_failure · incomplete" in first.locator(".attempt .verdict").first.text_content()
    assert "replan — step 1 failed 1 times" in first.locator(".plan h3").nth(1).text_content()
    assert first.text_content("#progress-text") == "3 of at most 3 clips"
    assert first.text_content("#verdict") == "Goal achieved: no"  # a random tiny world model moves nothing
    first_id = first.evaluate("location.hash").removeprefix("#run=")
    assert requested and all(url.startswith(server.url) for url in requested), requested  # nothing from the internet
    assert not [text for text in console if "Content Security Policy" in text], console

    # Tab 2 starts once tab 1's run is over; cancelled after its first clip, it keeps what it did.
    second.wait_for_selector(".attempt video", timeout=60 * SECONDS)
    second.click("#cancel")
    wait_until(second, "document.querySelector('#state').textContent.startsWith('cancelled')")
    folder = tmp_path / "root" / second.evaluate("location.hash").removeprefix("#run=")
    assert json.loads((folder / "serve.json").read_text())["state"] == "cancelled"
    assert not (folder / "summary.json").exists()
    journal = Journal(folder / "journal")  # what `spiral run` reads when the same command is rerun to resume
    assert [e["kind"] for e in journal.entries][:2] == ["plan", "clips"] and not journal.dropped
    assert f"{sum(e['kind'] == 'clips' for e in journal.entries)} clip(s) kept on disk" in second.text_content("#state")

    # A fresh tab reopens the first run from the list, from its files on disk; a bench run shows its report.
    bench = tmp_path / "root" / "bench-run"
    bench.mkdir()
    (bench / "results.jsonl").write_text("{}\n")
    (bench / "report.html").write_text("<h1>ActWM-Bench report</h1>")
    third = context.new_page()
    third.goto(server.url)
    third.click("#runs button[data-id='bench-run']")
    assert third.frame_locator("#report").locator("h1").text_content() == "ActWM-Bench report"
    third.click(f"#runs button[data-id='{first_id}']")
    third.wait_for_selector("#verdict:has-text('Goal achieved: no')", timeout=30 * SECONDS)
    assert third.locator(".attempt").count() == 3 and third.locator(".plan").count() == 2
    assert first_video_plays(third, ".attempt video") > 0
    assert GOAL in third.text_content("#view-goal")

    # The test writes into its own folder; the docs' copy is refreshed only when asked, so a test
    # run never changes a tracked file.
    shots = (tmp_path / "serve.png", DOCS_SHOT) if os.environ.get("SPIRAL_DOCS_SCREENSHOT") else (tmp_path / "serve.png",)
    for shot in shots:
        first.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the finished page: {tmp_path / 'serve.png'}")
    assert Image.open(tmp_path / "serve.png").size[0] == 1400

    # Stopping the server ends the run it is running, and says so in the run's folder.
    body = json.dumps({"goal": GOAL, "scene_seed": SCENE, "planner": "symbolic", "critic": "oracle", "max_generations": 100})
    request = urllib.request.Request(f"{server.url}api/runs", body.encode(), {"Content-Type": "application/json"})
    last = tmp_path / "root" / json.load(urllib.request.urlopen(request, timeout=10))["id"]
    wait_for_file(last / "journal" / "calls.jsonl")
    assert server.stop() == 0
    assert json.loads((last / "serve.json").read_text())["state"] == "cancelled"
    assert not [pid for pid in running_commands() if str(last) in pid], "a run outlived the server"


def wait_for_file(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.is_file():
        assert time.monotonic() < deadline, f"{path} did not appear within {seconds} s"
        time.sleep(0.1)


def running_commands() -> list[str]:
    """The command lines of this machine's processes."""
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # it ended while we looked
    return lines


def test_bad_input_and_paths_out_of_the_root_in_the_page(browser, server, tmp_path):
    page = browser.new_page()
    page.goto(server.url)
    for name, data in (("notes.png", b"plain text, not a picture"), ("<img src=x onerror=alert(1)>.png", b"GIF89a")):
        page.set_input_files("#image", files=[{"name": name, "mimeType": "image/png", "buffer": data}])
        page.wait_for_selector("#upload-msg:has-text('not a PNG or JPEG')")
        assert page.text_content("#upload-msg").startswith(f"{name}: the file is not a PNG or JPEG image")
        assert page.locator("#upload-msg img").count() == 0  # the name is shown as text, never as markup
    wide = tmp_path / "wide.png"
    Image.new("RGB", (5000, 4)).save(wide)
    page.set_input_files("#image", str(wide))
    page.wait_for_selector("#upload-msg:has-text('over the 4096x4096 limit')")
    assert page.text_content("#upload-msg") == "wide.png: the image is 5000x4 pixels, over the 4096x4096 limit: resize it"
    page.set_input_files("#image", files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": bytes(10 * 2**20 + 1)}])
    page.wait_for_selector("#upload-msg:has-text('10 MB limit')")
    good = tmp_path / "good.jpg"
    Image.new("RGB", (320, 240), (20, 90, 200)).save(good)
    page.set_input_files("#image", str(good))
    page.wait_for_selector("#upload-msg:has-text('320x240, accepted')")
    assert wait_until(page, "document.querySelector('#start-thumb').naturalWidth") == 320

    page.click("#new-scene")
    seed = page.input_value("#seed")
    wait_until(page, f"document.querySelector('#start-thumb').src.endsWith('/api/scene/{seed}.png')")
    assert wait_until(page, "document.querySelector('#start-thumb').naturalWidth") == 256

    page.fill("#goal", "clear the left side")
    page.fill("#max_tries", "0")
    page.click("#run")
    page.wait_for_selector("#form-msg:has-text('max_tries')")
    assert page.text_content("#form-msg") == "max_tries must be a whole number from 1 to 10, got 0"
    assert not [p for p in (tmp_path / "root").iterdir() if not p.name.startswith(".")]  # nothing was started

    # Markup in a goal is shown as text; a run that fails says why.
    goal = '<img src=x onerror="window.pwned=1">clear the left side'
    page.fill("#goal", goal)
    page.fill("#max_tries", "1")
    page.select_option("#planner", "symbolic")
    page.select_option("#critic", "oracle")
    page.click("#run")
    wait_until(page, "document.querySelector('#state').textContent.startsWith('failed')", 60)
    assert "spiral: error:" in page.text_content("#state")
    assert page.text_content("#view-goal") == f"Goal: {goal}"
    assert goal in page.text_content("#runs") and page.locator("main img").count() == 1  # the thumbnail, and no other
    assert page.evaluate("window.pwned") is None

    for path in ["/runs/../../etc/passwd", "/runs/%2e%2e/%2e%2e/etc/passwd", "/runs/..%2f..%2fetc%2fpasswd",
                 "/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/runs/%2Fetc%2Fpasswd", "/static/..%2f..%2f..%2fetc%2fpasswd"]:  # fmt: skip
        status, body = raw_get(server.url, path)
        assert status in (403, 404) and "root:" not in body, path
    assert raw_get(server.url, "/api/options")[0] == 200
