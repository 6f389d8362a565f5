"""The pools and presets pages: a preset applied with its keys, a pool made from two
connections, and neither page ever holding a key."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Page, Response, expect

from tests.conftest import Server
from tests.ui.conftest import axe, open_ui, shoot


def record(page: Page) -> list[Response]:
    answers: list[Response] = []
    page.on("response", lambda answer: answers.append(answer))
    return answers


def bodies(answers: list[Response]) -> str:
    """Every answer the page read, the live event stream aside (it never ends)."""
    return "\n".join(
        a.body().decode(errors="replace") for a in answers if not a.url.endswith("/api/events")
    )


def test_a_preset_applied_with_its_keys_creates_its_connections(
    page: Page, server: Server, api: httpx.Client
) -> None:
    answers = record(page)
    open_ui(page, server, "#/presets")
    expect(page.get_by_role("heading", name="Presets", level=1)).to_be_visible()
    stack = page.get_by_role("article", name="Production Stack")
    expect(stack).to_contain_text("Claude Sonnet")
    shoot(page, "presets")
    axe(page, "presets page")

    stack.get_by_role("button", name="Apply Production Stack").click()
    dialog = page.get_by_role("dialog", name="Apply Production Stack")
    keys = dialog.get_by_label("API key for")
    expect(keys).to_have_count(3)
    secrets = [f"sk-preset-secret-{i}-0123456789abcdef" for i in range(3)]
    for i, secret in enumerate(secrets):
        keys.nth(i).fill(secret)
    dialog.get_by_role("group", name="Use the connections in").get_by_label("LiveKit").check()
    shoot(page, "preset-apply")
    axe(page, "preset apply dialog")
    dialog.get_by_role("button", name="Apply preset").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status").filter(has_text="Created Claude Sonnet")).to_be_visible()

    page.get_by_role("link", name="Go to connections").click()
    names = page.get_by_role("rowheader").get_by_role("link")
    expect(names).to_have_count(3)
    created = {c["name"]: c for c in api.get("/api/connections").json()["items"]}
    assert all(c["has_api_key"] and c["use_in_livekit"] for c in created.values())
    expect(names).to_have_text(sorted(created))
    seen = bodies(answers) + page.content()
    for secret in secrets:
        assert secret not in seen


def connection(api: httpx.Client, name: str) -> dict[str, Any]:
    made = api.post(
        "/api/connections",
        json={
            "name": name,
            "connection_type": "remote",
            "base_url": "http://127.0.0.1:9/v1",
            "model_name": "m",
        },
    )
    assert made.status_code == 201, made.text
    created: dict[str, Any] = made.json()
    return created


def test_a_pool_made_from_two_connections_then_deleted(
    page: Page, server: Server, api: httpx.Client
) -> None:
    connection(api, "Primary")
    connection(api, "Fallback")
    open_ui(page, server, "#/pools")
    expect(page.get_by_role("heading", name="No pools yet")).to_be_visible()
    axe(page, "pools page, empty")

    page.get_by_role("button", name="New pool").first.click()
    editor = page.get_by_role("dialog", name="New pool")
    editor.get_by_label("Name", exact=True).fill("Chat")
    editor.get_by_role("button", name="Add Primary").click()
    editor.get_by_role("button", name="Add Fallback").click()
    expect(editor.get_by_role("button", name="Remove Fallback")).to_be_visible()
    shoot(page, "pool-editor")
    axe(page, "pool editor")
    editor.get_by_role("button", name="Create pool").click()
    expect(editor).to_be_hidden()

    card = page.get_by_role("article", name="Chat")
    expect(card).to_contain_text("Primary")
    expect(card).to_contain_text("Fallback")
    shoot(page, "pools")
    axe(page, "pools page")
    members = api.get("/api/pools/Chat").json()["members"]
    assert [m["connection_name"] for m in members] == ["Primary", "Fallback"]

    card.get_by_role("button", name="Delete Chat").click()
    confirm = page.get_by_role("dialog", name="Delete Chat?")
    confirm.get_by_role("button", name="Delete", exact=True).click()
    expect(card).to_be_hidden()
    assert api.get("/api/pools").json()["items"] == []
