"""The console in headless Chromium against the local stack: prompt an agent whose answer
uses a tool, see the tool call and the streamed answer, find the submission settled, read
its trace as a waterfall, and cancel the effect its tool scheduled (and be told when the
effect was cancelled elsewhere first).

Chromium is Debian's (``chromium``), driven by Playwright with `executable_path`: nothing
is downloaded. Without it the test is skipped, except in CI (``CI`` set), where it fails.
A screenshot is kept as an artifact (the folder is printed); with
``AGENT_RUNTIME_UPDATE_SCREENSHOT=1`` it also replaces the README's ``docs/console.png``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
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


def _bar(row: Any) -> tuple[float, float]:
    """A waterfall row's bar: where it starts and how wide it is, in percent of the trace."""
    style = row.locator(".bar").first.get_attribute("style") or ""
    left, width = (re.search(rf"{key}:([0-9.]+)%", style) for key in ("left", "width"))
    assert left and width, style
    return float(left.group(1)), float(width.group(1))


def _sees_the_trace(page: Any) -> None:
    from playwright.sync_api import expect

    # A run's last spans (its attempt's) are written before its `idle` event, not before
    # `agent_end`: from `idle` on, the trace is whole.
    expect(page.locator("#events > div", has_text=re.compile(r" idle$"))).to_have_count(1)
    page.locator("tr[data-submission]").first.get_by_role("button", name="Trace").click()
    spans = page.get_by_role("region", name="Trace").get_by_role("listitem")
    submission = spans.filter(has_text="invoke_agent weather")
    expect(submission).to_contain_text("2 in / 13 out tokens")
    chats = spans.filter(has_text="chat function")
    expect(chats).to_have_count(2)
    expect(chats.last).to_contain_text("1 in / 12 out tokens")
    tool = spans.filter(has_text="execute_tool forecast")
    expect(tool).to_have_count(1)
    expect(spans.first).to_contain_text("invoke_agent weather")
    # invoke_agent > attempt 1 > turn 1 > execute_tool: indented by depth, each bar inside the trace.
    expect(tool.locator(".name")).to_have_attribute("style", "padding-left:3rem")
    assert _bar(submission)[0] == 0.0
    left, width = _bar(tool)
    assert left > 0 and left + width <= 100.01, (left, width)


def _cancels_effects(page: Any, stack: LocalStack, instance: str, artifacts: Path) -> None:
    from playwright.sync_api import expect

    effects = page.get_by_role("region", name="Effects")
    lisbon = effects.locator("tr[data-effect]", has_text="Lisbon")
    expect(lisbon).to_contain_text("check_later")
    expect(lisbon).to_contain_text("scheduled")
    page.get_by_label("Message").fill("Porto")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#answer")).to_have_text("The forecast says sunny in Porto. Have a good day!")
    porto = effects.locator("tr[data-effect]", has_text="Porto")
    expect(porto).to_contain_text("scheduled")
    expect(page.locator("#events > div", has_text=re.compile(r" idle$"))).to_have_count(2)

    lisbon.get_by_role("button", name="Cancel").click()
    expect(lisbon).to_contain_text("cancelled")
    expect(lisbon.get_by_role("button")).to_have_count(0)
    expect(porto.get_by_role("button", name="Cancel")).to_be_visible()
    second = page.locator("tr[data-submission]").last
    second.get_by_role("button", name="Trace").click()
    trace = page.get_by_role("region", name="Trace")
    expect(trace).to_contain_text(second.get_attribute("data-submission") or "?")
    expect(trace.get_by_role("listitem").filter(has_text="execute_tool forecast")).to_have_count(1)
    shot = artifacts / "console-instance.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("AGENT_RUNTIME_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, ROOT / "docs" / "console.png")

    # Cancelled by another client meanwhile: the console's Cancel gets the 409 and says so.
    porto_id = porto.get_attribute("data-effect")
    gone = httpx.delete(f"{stack.url}/agents/weather/{instance}/effects/{porto_id}", timeout=10)
    assert gone.status_code == 200, gone.text
    porto.get_by_role("button", name="Cancel").click()
    expect(effects.get_by_role("alert")).to_contain_text("cannot be cancelled: it was cancelled")
    expect(porto).to_contain_text("cancelled")


def test_the_console_prompts_streams_traces_and_cancels_effects(
    stack: LocalStack, browser: Any, instance: str, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(f"{stack.url}/console/")
    expect(page.get_by_role("heading", name="Agents")).to_be_visible()
    expect(page.get_by_role("region", name="weather")).to_contain_text("Tells tomorrow's weather.")

    page.goto(f"{stack.url}/console/#/agents/weather/{instance}")
    expect(page.get_by_role("region", name="Live events (websocket)")).to_be_visible()
    expect(page.get_by_role("region", name="Effects")).to_contain_text("no effects")
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
    _sees_the_trace(page)
    _cancels_effects(page, stack, instance, artifacts)

    page.goto(f"{stack.url}/console/#/agents/weather")
    page.get_by_label("Filter by id").fill(instance[-8:])
    expect(page.get_by_role("link", name=instance)).to_be_visible()

    # Reopened, the page replays the instance's events from the start over the WebSocket.
    page.goto(f"{stack.url}/console/#/agents/weather/{instance}")
    expect(page.locator("tr[data-submission]").first).to_contain_text("completed")
    expect(page.locator("#events")).to_contain_text("submission_settled")
    expect(page.locator("#answer")).to_have_text("The forecast says sunny in Porto. Have a good day!")
    expect(page.get_by_role("region", name="Effects").locator("tr[data-effect]", has_text="cancelled")).to_have_count(2)
    page.close()
    assert not errors, errors
