"""A connection's detail page and the usage dashboard, with traffic sent through the gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.ui.conftest import axe, open_ui, shoot
from tests.upstreams.ollama import FakeOllama


@pytest.fixture(scope="module")
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama(api_key=None, models=("llama3.2:3b",)) as upstream:
        yield upstream


@pytest.fixture
def busy(api: httpx.Client, ollama: FakeOllama) -> dict[str, Any]:
    """A local Ollama that has answered three calls through the gateway."""
    made = api.post(
        "/api/connections",
        json={
            "name": "Local Ollama",
            "connection_type": "local",
            "api_format": "ollama",
            "base_url": ollama.url,
            "model_name": "llama3.2:3b",
            "use_in_livekit": True,
            "max_retries": 0,
        },
    )
    assert made.status_code == 201, made.text
    for _ in range(3):
        call = api.post(
            "/v1/chat/completions",
            json={"model": "Local Ollama", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"X-UMP-Source": "livekit"},
        )
        assert call.status_code == 200, call.text
    deadline = time.monotonic() + 30  # usage is written in batches, off the request path
    while api.get("/api/usage").json()["totals"]["requests"] < 3:
        assert time.monotonic() < deadline, "the three calls never reached the usage report"
        time.sleep(0.1)
    created: dict[str, Any] = made.json()
    return created


def test_the_detail_page_shows_health_traffic_and_a_test(
    page: Page, server: Server, busy: dict[str, Any]
) -> None:
    open_ui(page, server)
    page.get_by_role("link", name="Local Ollama", exact=True).click()
    expect(page.get_by_role("heading", name="Local Ollama", level=1)).to_be_visible()
    assert page.url.endswith(f"#/connections/{busy['id']}")
    expect(page.get_by_role("heading", name="Health")).to_be_visible()
    expect(page.get_by_role("heading", name="Traffic")).to_be_visible()
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.get_by_role("heading", name="Local Ollama", level=1)).to_contain_text("Active")
    shoot(page, "connection-detail")
    axe(page, "connection detail page")


def test_the_usage_dashboard_counts_the_calls(
    page: Page, server: Server, busy: dict[str, Any]
) -> None:
    open_ui(page, server, "#/usage")
    expect(page.get_by_role("heading", name="Usage & cost", level=1)).to_be_visible()
    totals = page.get_by_role("region", name="Totals")
    expect(totals).to_contain_text("3Requests")  # the value, then its label
    expect(totals).to_contain_text("100.0%Success rate")
    expect(page.get_by_role("link", name="Local Ollama", exact=True)).to_be_visible()
    shoot(page, "usage")
    axe(page, "usage page")
