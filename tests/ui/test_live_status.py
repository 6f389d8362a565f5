"""A row's status badge follows the health monitor live: no reload, no click."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server, make_database, start_server
from tests.ui.conftest import open_ui
from tests.upstreams.ollama import FakeOllama


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose monitor probes every half second and gives up after one failure."""
    folder: Path = tmp_path_factory.mktemp("ui-live")
    for db in make_database("sqlite", folder):
        running = start_server(
            db,
            folder / "data",
            UMP_HEALTH_MONITOR="true",
            UMP_HEALTH_INTERVAL_S="0.5",
            UMP_HEALTH_FAILURE_THRESHOLD="1",
        )
        yield running
        running.stop()


def test_a_badge_turns_to_error_when_its_upstream_dies(page: Page, monitored: Server) -> None:
    upstream = FakeOllama(api_key=None, models=("llama3.2:3b",)).start()
    try:
        with monitored.client() as client:
            made = client.post(
                "/api/connections",
                json={
                    "name": "Local Ollama",
                    "connection_type": "local",
                    "api_format": "ollama",
                    "base_url": upstream.url,
                    "model_name": "llama3.2:3b",
                    "timeout": 2,
                    "max_retries": 0,
                },
            )
            assert made.status_code == 201, made.text
        open_ui(page, monitored)
        row = page.get_by_role("row").filter(
            has=page.get_by_role("link", name="Local Ollama", exact=True)
        )
        expect(row.get_by_text("Active", exact=True)).to_be_visible()  # a probe passed
        page.evaluate("window.stayed = true")  # gone if the page reloads
    finally:
        upstream.stop()
    expect(row.get_by_text("Error", exact=True)).to_be_visible(timeout=60_000)
    assert page.evaluate("window.stayed") is True
