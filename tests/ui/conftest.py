"""Browser tests: Debian's Chromium, driven by Playwright, against a live server.

One browser for the session; each test gets a fresh page (1280x800, or 390x844 for
``narrow_page``) that fails the test on any console error or uncaught exception. The server is
the suite's own (``start_server``), on SQLite only: the UI sees the REST API, and the API's
tests already cover both backends. ``shoot`` saves screenshots under test-artifacts/ui/ at both
widths, light and dark; ``axe`` runs axe-core (bundled with axe-playwright-python, no network)
and fails on serious or critical violations.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.conftest import Server, make_database, start_server
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_PATH = "/ai-compute/connections"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
WIDE: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 844}
# Chrome logs every HTTP error answer as a console error, with its status
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")

expect.set_options(timeout=20_000)  # a slow, shared machine: generous, event-driven waits


@dataclass
class Watch:
    """What a page said that its test did not expect: console errors, uncaught exceptions."""

    errors: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def expect_status(self, status: int) -> None:
        """An API answer with this status is part of the test (401 before signing in)."""
        self.expected_statuses.add(status)

    def console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        refused = REFUSED.match(message.text)
        if refused and int(refused[1]) in self.expected_statuses:
            return
        self.errors.append(f"console error: {message.text} at {message.location.get('url')}")

    def page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error.message}\n{error.stack}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests need Debian's chromium at {CHROMIUM}: make test installs it"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The browser tests' server (overrides the suite's, so ``api`` uses it): SQLite only."""
    folder = tmp_path_factory.mktemp("ui")
    for db in make_database("sqlite", folder):
        running = start_server(
            db,
            folder / "data",
            UMP_GATEWAY_REFRESH_S="0.05",
            UMP_TOKEN_REFRESH_S="2",
            UMP_USAGE_FLUSH_S="0.1",  # the pages read calls made just before
            UMP_HEALTH_MONITOR="false",
        )
        yield running
        running.stop()


@pytest.fixture
def watch() -> Watch:
    return Watch()


def _page(browser: Browser, watch: Watch, viewport: ViewportSize) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("console", watch.console)
    page.on("pageerror", watch.page_error)
    yield page
    context.close()
    assert not watch.errors, "\n".join(watch.errors)


@pytest.fixture
def page(browser: Browser, watch: Watch) -> Iterator[Page]:
    yield from _page(browser, watch, WIDE)


@pytest.fixture
def narrow_page(browser: Browser, watch: Watch) -> Iterator[Page]:
    yield from _page(browser, watch, NARROW)


def open_ui(page: Page, server: Server, route: str = "#/connections") -> None:
    page.goto(f"{server.url}{UI_PATH}{route}")


OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def shoot(page: Page, name: str) -> None:
    """Screenshots of the page as it is, at 1280 and 390 px, light and dark; at 390 px nothing
    may stick out sideways (a wide table scrolls inside its own box)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size or WIDE
    for viewport in (WIDE, NARROW):
        page.set_viewport_size(viewport)
        if viewport is NARROW:  # charts follow their box on the next ResizeObserver turn
            deadline = time.monotonic() + 3
            while (overflow := page.evaluate(OVERFLOW)) > 0 and time.monotonic() < deadline:
                page.wait_for_timeout(50)
            assert overflow <= 0, f"{name}: {overflow} px wider than a 390 px screen"
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.screenshot(path=ARTIFACTS / f"{name}-{viewport['width']}-{scheme}.png")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size(before)


_AXE = Axe()


def axe(page: Page, what: str) -> None:
    """No serious or critical axe-core violation, in the light scheme and the dark one."""
    found: list[str] = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        response: dict[str, Any] = _AXE.run(page).response
        for violation in response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [", ".join(map(str, node["target"])) for node in violation["nodes"]]
                found.append(
                    f"{scheme}: {violation['id']} ({violation['impact']}): {violation['help']}"
                    f" at {'; '.join(targets[:5])}"
                )
    page.emulate_media(color_scheme="light")
    assert not found, f"{what}:\n" + "\n".join(found)


UPSTREAM_KEY = "sk-ui-upstream-key-0123456789abcdef"  # the fake OpenAI's: it must never show


@pytest.fixture(scope="module")
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama(api_key=None, models=("llama3.2:3b",)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def openai_upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=UPSTREAM_KEY, models=("gpt-4",)) as upstream:
        yield upstream
