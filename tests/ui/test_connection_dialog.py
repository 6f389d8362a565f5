"""The Add/Edit dialog: the guide's Quick Start "Add Local Ollama", then edit, filter, deactivate
and delete; an OpenAI connection added with a key that the page never receives back."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page, Request, Response, expect

from tests.conftest import Server
from tests.ui.conftest import UI_PATH, UPSTREAM_KEY, Watch, axe, shoot
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI


def model_lists(page: Page) -> list[str]:
    """The hosts the page asks the server to list models from (tests stay on this machine)."""
    hosts: list[str] = []

    def seen(request: Request) -> None:
        if request.url.endswith("/api/connections/models") and request.post_data:
            base = json.loads(request.post_data)["connection"].get("base_url") or ""
            hosts.append(urlsplit(base).hostname or "")

    page.on("request", seen)
    return hosts


def test_quick_start_add_local_ollama_then_edit_filter_deactivate_delete(
    page: Page, server: Server, api: httpx.Client, ollama: FakeOllama, watch: Watch
) -> None:
    # while the form is half filled (the fake's URL, the format not chosen yet) the model list
    # may fail with 502: the dialog says so beside the Model field, and Chrome logs the answer
    watch.expect_status(502)
    hosts = model_lists(page)
    page.goto(f"{server.url}{UI_PATH}")  # 1. Go to /ai-compute/connections
    page.get_by_role("button", name="Add Connection").click()  # 2.
    dialog = page.get_by_role("dialog", name="Add Connection")
    dialog.get_by_label("Name", exact=True).fill("Local Ollama")  # 3.
    dialog.get_by_label("Type", exact=True).select_option(label="Local")
    dialog.get_by_label("Base URL").fill(ollama.url)  # the fake, not localhost:11434
    # the fake listens on a port other than 11434, which the server takes for llama.cpp's
    # OpenAI format unless told: say it speaks Ollama's
    dialog.get_by_label("API format").select_option("ollama")
    dialog.get_by_label("Model", exact=True).fill("llama3.2:3b")
    expect(dialog.get_by_text("1 models offered")).to_be_visible()  # the list came, async
    dialog.get_by_label("Use in LiveKit").check()  # 4.
    dialog.get_by_label("Use in MCP").check()
    shoot(page, "add-connection")
    axe(page, "add connection dialog")
    dialog.get_by_role("button", name="Create Connection").click()  # 5.
    expect(dialog).to_be_hidden()

    row = page.get_by_role("row").filter(
        has=page.get_by_role("link", name="Local Ollama", exact=True)
    )
    row.get_by_role("button", name="Test").click()  # 6.
    result = page.get_by_role("dialog", name="Test: Local Ollama")
    expect(result.get_by_text("Success", exact=True)).to_be_visible()
    result.get_by_role("button", name="Close", exact=True).last.click()
    expect(row.get_by_text("Active", exact=True)).to_be_visible()
    stored = api.get("/api/connections/Local Ollama").json()
    assert stored["connection_type"] == "local" and stored["base_url"] == ollama.url
    assert stored["model_name"] == "llama3.2:3b" and stored["status"] == "active"
    assert stored["use_in_livekit"] and stored["use_in_mcp"] and not stored["use_in_automation"]

    row.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("dialog", name="Edit Local Ollama")
    expect(editor.get_by_label("Name", exact=True)).to_have_value("Local Ollama")
    editor.get_by_label("Tags").fill("voice, dev")
    editor.get_by_label("Description").fill("On the workstation")
    axe(page, "edit connection dialog")
    editor.get_by_role("button", name="Save changes").click()
    expect(editor).to_be_hidden()
    expect(row).to_contain_text("On the workstation")
    assert api.get("/api/connections/Local Ollama").json()["tags"] == ["voice", "dev"]

    names = page.get_by_role("rowheader").get_by_role("link")
    page.get_by_label("Type", exact=True).select_option(label="Local")
    page.get_by_label("Integration", exact=True).select_option(label="MCP")
    page.get_by_label("Status", exact=True).select_option(label="Active")
    expect(names).to_have_text(["Local Ollama"])
    page.get_by_label("Search", exact=True).fill("workstation")
    expect(names).to_have_text(["Local Ollama"])
    page.get_by_label("Integration", exact=True).select_option(label="Automation")
    expect(page.get_by_text("No connection matches these filters.")).to_be_visible()
    page.get_by_label("Integration", exact=True).select_option(label="Any")
    page.get_by_label("Status", exact=True).select_option(label="Any")
    expect(names).to_have_text(["Local Ollama"])

    row.get_by_role("button", name="Deactivate").click()
    expect(row.get_by_text("Inactive", exact=True)).to_be_visible()
    page.get_by_label("Status", exact=True).select_option(label="Inactive")
    expect(names).to_have_text(["Local Ollama"])
    row.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="Delete Local Ollama?").get_by_role(
        "button", name="Delete", exact=True
    ).click()
    expect(page.get_by_text("No connection matches these filters.")).to_be_visible()
    assert api.get("/api/connections").json()["total"] == 0
    assert set(hosts) <= {"127.0.0.1"}, hosts


def test_an_openai_key_goes_in_and_only_its_mask_comes_back(
    page: Page, server: Server, api: httpx.Client, openai_upstream: FakeOpenAI
) -> None:
    answers: list[Response] = []
    page.on("response", lambda answer: answers.append(answer))
    hosts = model_lists(page)
    page.goto(f"{server.url}{UI_PATH}")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog", name="Add Connection")
    # the Base URL first: the dialog's default (api.openai.com) is off this machine
    dialog.get_by_label("Base URL").fill(openai_upstream.url + "/v1")
    dialog.get_by_label("Name", exact=True).fill("OpenAI GPT-4")
    dialog.get_by_label("Type", exact=True).select_option(label="OpenAI")
    dialog.get_by_label("API Key").fill(UPSTREAM_KEY)
    dialog.get_by_label("Model", exact=True).fill("gpt-4")
    dialog.get_by_role("region", name="Test").get_by_role("button", name="Test").click()
    expect(dialog.get_by_text("Works.")).to_be_visible()
    dialog.get_by_role("button", name="Create Connection").click()
    expect(dialog).to_be_hidden()
    mask = api.get("/api/connections/OpenAI GPT-4").json()["api_key_mask"]
    assert mask and UPSTREAM_KEY not in mask

    page.get_by_role("button", name="Edit OpenAI GPT-4").click()
    editor = page.get_by_role("dialog", name="Edit OpenAI GPT-4")
    expect(editor.get_by_role("group", name="API Key")).to_contain_text(mask)
    shoot(page, "edit-connection-key-mask")
    # an edit is tested before it is saved, with the stored key (the browser never has it)
    openai_upstream.models.append("gpt-4o")
    editor.get_by_label("Model", exact=True).fill("gpt-4o")
    tests = editor.get_by_role("region", name="Test")
    expect(tests).to_contain_text("Tests your changes before saving")
    tests.get_by_role("button", name="Test").click()
    expect(editor.get_by_text("Works.")).to_be_visible()
    sent = openai_upstream.requests[-1]
    assert sent.body["model"] == "gpt-4o"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    editor.get_by_role("button", name="Cancel").click()
    expect(editor).to_be_hidden()
    assert api.get("/api/connections/OpenAI GPT-4").json()["model_name"] == "gpt-4"

    read = [a for a in answers if not a.url.endswith("/api/events")]
    assert any(a.url.endswith("/api/connections/test") for a in read)
    for answer in read:
        assert UPSTREAM_KEY not in answer.body().decode(errors="replace"), answer.url
    assert UPSTREAM_KEY not in page.content()
    assert set(hosts) <= {"127.0.0.1"}, hosts
