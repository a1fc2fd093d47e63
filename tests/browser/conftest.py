"""Fixtures for the browser tests: the real ``imgpipe run``, Debian's headless Chromium, a fresh page per test."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.services import unavailable
from support.stacks import EmbeddedStack

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

OpenPage = Callable[..., "Page"]
Screenshot = Callable[["Page", str], Path]


@pytest.fixture(scope="module")
def imgpipe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    server = EmbeddedStack(env={}, data_dir=tmp_path_factory.mktemp("browser") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this
    # thread while it lives, which the asyncio tests of other packages must not meet.
    if not CHROMIUM.exists():
        unavailable(f"Debian's chromium at {CHROMIUM} (install it with scripts/ensure-chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Browser, imgpipe_server: EmbeddedStack) -> Iterator[OpenPage]:
    """Open the upload page in a fresh browser context.

    The test fails on any uncaught script error or Content-Security-Policy violation (the
    page is served with a strict policy).
    """
    contexts: list[Any] = []
    problems: list[str] = []

    def open_(viewport: dict[str, int] | None = None) -> Page:
        context = browser.new_context(
            base_url=imgpipe_server.url, accept_downloads=True, viewport=viewport or {"width": 1280, "height": 900}
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
        page.on("console", lambda msg: "Content Security Policy" in msg.text and problems.append(msg.text))
        page.goto("/")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems, f"the page misbehaved: {problems}"


@pytest.fixture
def page(open_page: OpenPage) -> Page:
    return open_page()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Screenshot:
    """Save a full-page screenshot as test-artifacts/browser/<test>-<step>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_]+", "-", request.node.name.removeprefix("test_"))[:80]

    def take(page: Page, step: str) -> Path:
        path = ARTIFACTS / f"{test}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
