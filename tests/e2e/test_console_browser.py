"""The console in headless Chromium against the local stack: prompt an agent whose answer
uses a tool, see the tool call and the streamed answer, find the submission settled.

Chromium is Debian's (``chromium``), driven by Playwright with `executable_path`: nothing
is downloaded. Without it the test is skipped, except in CI (``CI`` set), where it fails.
A screenshot is kept as an artifact (the folder is printed); with
``AGENT_RUNTIME_UPDATE_SCREENSHOT=1`` it also replaces the README's ``docs/console.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.dev import LocalStack

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 20_000


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "the console's browser test needs Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must install it")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    if os.environ.get("CI"):
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("AGENT_RUNTIME_TEST_ARTIFACTS") or tmp_path_factory.mktemp("console-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots in {folder}")
    return folder


def test_the_console_prompts_streams_and_shows_the_settled_submission(
    stack: LocalStack, browser: Any, instance: str, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{stack.url}/console/")
    expect(page.get_by_role("heading", name="Agents")).to_be_visible()
    expect(page.get_by_role("region", name="weather")).to_contain_text("Tells tomorrow's weather.")

    page.goto(f"{stack.url}/console/#/agents/weather/{instance}")
    expect(page.get_by_role("region", name="Live events (websocket)")).to_be_visible()
    page.get_by_label("Message").fill("Lisbon")
    page.get_by_role("button", name="Send").click()

    expect(page.locator("#tools")).to_contain_text("forecast")
    expect(page.locator("#tools")).to_contain_text("ok: sunny in Lisbon")
    expect(page.locator("#answer")).to_have_text("The forecast says sunny in Lisbon. Have a good day!")
    expect(page.locator("#chat-state")).to_have_text("settled: completed")
    expect(page.locator("#events")).to_contain_text("text_delta")
    row = page.locator("tr[data-submission]").first
    expect(row).to_contain_text("settled")
    expect(row).to_contain_text("completed")
    expect(page.get_by_role("region", name="History (session default)")).to_contain_text("tool call forecast")
    expect(page.get_by_role("region", name="Effects")).to_contain_text("effects")  # the route or its absence
    page.get_by_role("button", name="Trace").first.click()
    expect(page.get_by_role("region", name="Trace")).not_to_contain_text("choose a submission")

    page.goto(f"{stack.url}/console/#/agents/weather")
    page.get_by_label("Filter by id").fill(instance[-8:])
    expect(page.get_by_role("link", name=instance)).to_be_visible()

    # Reopened, the page replays the instance's events from the start over the WebSocket.
    page.goto(f"{stack.url}/console/#/agents/weather/{instance}")
    expect(page.locator("tr[data-submission]").first).to_contain_text("completed")
    expect(page.locator("#events")).to_contain_text("submission_settled")
    expect(page.locator("#answer")).to_have_text("The forecast says sunny in Lisbon. Have a good day!")
    shot = artifacts / "console-instance.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("AGENT_RUNTIME_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, ROOT / "docs" / "console.png")
    page.close()
