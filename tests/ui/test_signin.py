"""With tokens on, the page asks for one; a member sees their team's connections only, and the
token stays in the tab's sessionStorage (never in the URL or localStorage)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server, make_database, start_server
from tests.test_access import create_token, wait_until
from tests.ui.conftest import UI_PATH, Watch, axe, open_ui, shoot


@dataclass
class Teams:
    server: Server
    admin: str
    alice: str  # a member of team a


@pytest.fixture(scope="module")
def teams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Teams]:
    folder: Path = tmp_path_factory.mktemp("ui-tokens")
    for db in make_database("sqlite", folder):
        server = start_server(
            db, folder / "data", UMP_HEALTH_MONITOR="false", UMP_TOKEN_REFRESH_S="0.5"
        )
        try:
            # The first token is made from the CLI (the server reads it on its next poll of the
            # token table); the member's through the API, which the server knows at once.
            admin = create_token(server, "--name", "root", "--role", "admin")
            with server.client(headers={"Authorization": f"Bearer {admin}"}) as client:
                try:
                    wait_until(lambda: client.get("/api/tokens").status_code == 200, 30)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}; the server's log:\n{server.log()}") from None
                made = client.post(
                    "/api/tokens", json={"name": "alice", "role": "member", "team": "a"}
                )
                assert made.status_code == 201, made.text
                alice: str = made.json()["token"]
                for name, team in (("Team A model", "a"), ("Team B model", "b")):
                    made = client.post(
                        "/api/connections",
                        json={
                            "name": name,
                            "connection_type": "remote",
                            "base_url": "http://127.0.0.1:9/v1",
                            "model_name": "m",
                            "team": team,
                        },
                    )
                    assert made.status_code == 201, made.text
            yield Teams(server, admin, alice)
        finally:
            server.stop()


def test_a_member_signs_in_and_sees_only_their_team(page: Page, teams: Teams, watch: Watch) -> None:
    watch.expect_status(401)  # the page asks the API, which wants a token
    watch.expect_status(403)  # the shell asks for the tokens to learn whether to show admin pages
    open_ui(page, teams.server)
    token = page.get_by_label("API token")
    expect(token).to_be_visible()
    expect(page.get_by_role("navigation", name="Sections")).to_have_count(0)
    shoot(page, "signin")
    axe(page, "sign-in page")

    token.fill("ump_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("That token was refused")).to_be_visible()
    expect(token).to_have_attribute("aria-invalid", "true")
    axe(page, "sign-in page with its error")

    token.fill(teams.alice)
    page.get_by_role("button", name="Sign in").click()
    names = page.get_by_role("rowheader").get_by_role("link")
    expect(names).to_have_text(["Team A model"])
    expect(page.get_by_role("link", name="Tokens")).to_have_count(0)  # admins only
    assert teams.alice not in page.url
    assert page.evaluate("JSON.stringify(Object.values(localStorage))").find(teams.alice) < 0
    assert page.evaluate("Object.values(sessionStorage)") == [teams.alice]
    assert teams.alice not in page.content()

    page.reload()  # the tab keeps its token
    expect(names).to_have_text(["Team A model"])
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.url.endswith(UI_PATH + "#/connections")


def sign_in(page: Page, teams: Teams, token: str) -> None:
    open_ui(page, teams.server)
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Sections")).to_be_visible()


def test_an_admin_makes_a_token_shown_once_and_reads_the_audit_log_and_webhooks(
    page: Page, teams: Teams, watch: Watch
) -> None:
    watch.expect_status(401)
    sign_in(page, teams, teams.admin)
    sections = page.get_by_role("navigation", name="Sections")
    sections.get_by_role("link", name="Tokens").click()
    expect(page.get_by_role("heading", name="Tokens", level=1)).to_be_visible()
    expect(page.get_by_role("rowheader", name="alice")).to_be_visible()
    axe(page, "tokens page")

    page.get_by_role("button", name="New token").click()
    dialog = page.get_by_role("dialog", name="New token")
    dialog.get_by_label("Name", exact=True).fill("ci job")
    dialog.get_by_label("Team", exact=True).fill("a")
    axe(page, "new token dialog")
    dialog.get_by_role("button", name="Create token").click()
    shown = page.get_by_role("dialog", name="Token for ci job")
    made = shown.get_by_label("Token", exact=True)
    expect(made).to_have_value(re.compile(r"^ump_"))
    token = made.input_value()
    shoot(page, "token-shown-once")
    axe(page, "new token shown once")
    shown.get_by_role("button", name="Done").click()
    expect(page.get_by_role("rowheader", name="ci job")).to_be_visible()
    shoot(page, "tokens")
    assert token not in page.content()

    sections.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    expect(page.get_by_role("cell", name="token.create").first).to_be_visible()
    shoot(page, "audit")
    axe(page, "audit log")

    sections.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
    axe(page, "webhooks page")
    page.get_by_role("button", name="New webhook").click()
    dialog = page.get_by_role("dialog", name="New webhook")
    expect(dialog.get_by_label("URL", exact=True)).to_be_visible()
    axe(page, "new webhook dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
