"""The connections page in a browser: the list, its filters, a test, deactivate and delete."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, Response, expect

from tests.conftest import Server
from tests.ui.conftest import UPSTREAM_KEY, axe, open_ui, shoot
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI


def create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    made = api.post("/api/connections", json={"max_retries": 0, **body})
    assert made.status_code == 201, made.text
    created: dict[str, Any] = made.json()
    return created


@pytest.fixture
def three(
    api: httpx.Client, ollama: FakeOllama, openai_upstream: FakeOpenAI
) -> dict[str, dict[str, Any]]:
    """A local Ollama for LiveKit and MCP, an OpenAI connection with a key, and an inactive one."""
    return {
        "local": create(
            api,
            name="Local Ollama",
            connection_type="local",
            api_format="ollama",
            base_url=ollama.url,
            model_name="llama3.2:3b",
            use_in_livekit=True,
            use_in_mcp=True,
            tags=["local", "voice"],
        ),
        "openai": create(
            api,
            name="OpenAI GPT-4",
            connection_type="openai",
            base_url=openai_upstream.url + "/v1",
            model_name="gpt-4",
            api_key=UPSTREAM_KEY,
            use_in_automation=True,
            tags=["prod"],
            description="The team's paid account",
        ),
        "spare": create(
            api,
            name="Spare vLLM",
            connection_type="remote",
            base_url=openai_upstream.url + "/v1",
            model_name="gpt-4",
            is_active=False,
        ),
    }


def listed(page: Page) -> Locator:
    """The names in the list, in order (each row's heading cell holds a link to the connection)."""
    return page.get_by_role("rowheader").get_by_role("link")


def row(page: Page, name: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))


def test_the_list_filters_by_type_integration_status_tag_and_search(
    page: Page, server: Server, three: dict[str, dict[str, Any]]
) -> None:
    open_ui(page, server)
    expect(page.get_by_role("heading", name="Connections", level=1)).to_be_visible()
    expect(listed(page)).to_have_text(["Local Ollama", "OpenAI GPT-4", "Spare vLLM"])
    summary = page.get_by_role("region", name="Summary")
    expect(summary).to_contain_text("3Total")
    expect(summary).to_contain_text("2Active")
    shoot(page, "connections-list")
    axe(page, "connections page")

    page.get_by_label("Type", exact=True).select_option(label="OpenAI")
    expect(listed(page)).to_have_text(["OpenAI GPT-4"])
    page.get_by_label("Type", exact=True).select_option(label="All types")
    page.get_by_label("Integration", exact=True).select_option(label="LiveKit")
    expect(listed(page)).to_have_text(["Local Ollama"])
    page.get_by_label("Integration", exact=True).select_option(label="Automation")
    expect(listed(page)).to_have_text(["OpenAI GPT-4"])
    page.get_by_label("Integration", exact=True).select_option(label="Any")
    page.get_by_label("Status", exact=True).select_option(label="Inactive")
    expect(listed(page)).to_have_text(["Spare vLLM"])
    page.get_by_label("Status", exact=True).select_option(label="Any")
    page.get_by_label("Tag", exact=True).fill("voice")
    page.get_by_label("Tag", exact=True).press("Enter")
    expect(listed(page)).to_have_text(["Local Ollama"])
    page.get_by_label("Tag", exact=True).fill("")
    page.get_by_label("Tag", exact=True).press("Enter")
    expect(listed(page)).to_have_count(3)
    page.get_by_label("Search", exact=True).fill("paid account")  # the description
    expect(listed(page)).to_have_text(["OpenAI GPT-4"])
    page.get_by_label("Search", exact=True).fill("no such thing")
    expect(page.get_by_text("No connection matches these filters.")).to_be_visible()
    shoot(page, "connections-no-match")


def test_test_then_deactivate_then_delete_a_connection(
    page: Page, server: Server, three: dict[str, dict[str, Any]], ollama: FakeOllama
) -> None:
    open_ui(page, server)
    local = row(page, "Local Ollama")
    expect(local.get_by_text("Unknown", exact=True)).to_be_visible()

    page.get_by_role("button", name="Test Local Ollama").click()
    result = page.get_by_role("dialog", name="Test: Local Ollama")
    expect(result.get_by_text("Success", exact=True)).to_be_visible()
    shoot(page, "connection-test-success")
    axe(page, "test result dialog")
    result.get_by_role("button", name="Close", exact=True).last.click()
    expect(result).to_be_hidden()
    expect(local.get_by_text("Active", exact=True)).to_be_visible()
    assert any(r.path == "/api/chat" for r in ollama.requests)

    page.get_by_role("button", name="Deactivate Local Ollama").click()
    expect(local.get_by_text("Inactive", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Activate Local Ollama")).to_be_visible()

    page.get_by_role("button", name="Delete Local Ollama").click()
    confirm = page.get_by_role("dialog", name="Delete Local Ollama?")
    expect(confirm).to_be_visible()
    shoot(page, "connection-delete-confirm")
    axe(page, "delete confirmation")
    confirm.get_by_role("button", name="Delete", exact=True).click()
    expect(confirm).to_be_hidden()
    expect(listed(page)).to_have_text(["OpenAI GPT-4", "Spare vLLM"])
    expect(page.get_by_role("region", name="Summary")).to_contain_text("2Total")


def test_a_failed_test_says_what_to_check(
    page: Page, server: Server, three: dict[str, dict[str, Any]], api: httpx.Client
) -> None:
    api.patch(f"/api/connections/{three['openai']['id']}", json={"api_key": "sk-wrong-key-000"})
    open_ui(page, server)
    page.get_by_role("button", name="Test OpenAI GPT-4").click()
    result = page.get_by_role("dialog", name="Test: OpenAI GPT-4")
    expect(result.get_by_text("What to check")).to_be_visible()
    expect(result).to_contain_text("auth")
    axe(page, "failed test dialog")
    page.keyboard.press("Escape")  # closes, and focus goes back to the button that opened it
    expect(result).to_be_hidden()
    expect(page.get_by_role("button", name="Test OpenAI GPT-4")).to_be_focused()
    expect(row(page, "OpenAI GPT-4").get_by_text("Error", exact=True)).to_be_visible()


def test_the_key_never_reaches_the_page(
    page: Page, server: Server, three: dict[str, dict[str, Any]]
) -> None:
    """Every answer the page reads (the live event stream aside: it never ends) and the page
    itself hold the key's mask at most, never the key."""
    answers: list[Response] = []
    page.on("response", lambda answer: answers.append(answer))
    open_ui(page, server)
    page.get_by_role("button", name="Test OpenAI GPT-4").click()
    expect(page.get_by_role("dialog").get_by_text("Success", exact=True)).to_be_visible()
    page.keyboard.press("Escape")
    expect(row(page, "OpenAI GPT-4").get_by_text("Active", exact=True)).to_be_visible()
    read = [r for r in answers if not r.url.endswith("/api/events")]
    assert any(r.url.endswith("/test") for r in read)
    for answer in read:
        assert UPSTREAM_KEY not in answer.body().decode(errors="replace"), answer.url
    assert UPSTREAM_KEY not in page.content()


def test_on_a_phone_the_list_and_a_test_fit_the_screen(
    narrow_page: Page, server: Server, three: dict[str, dict[str, Any]]
) -> None:
    page = narrow_page
    open_ui(page, server)
    expect(listed(page)).to_have_text(["Local Ollama", "OpenAI GPT-4", "Spare vLLM"])
    page.get_by_role("button", name="Test Local Ollama").click()
    result = page.get_by_role("dialog", name="Test: Local Ollama")
    expect(result.get_by_text("Success", exact=True)).to_be_visible()
    box = result.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{overflow} px wider than the screen"
