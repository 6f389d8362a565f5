"""The MCP server (``python -m ump_mcp_llm_server``) with the official ``mcp`` client: over stdio
against the live server, over its own streamable HTTP, and at ``/mcp`` inside the server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientSession, IncomingMessage
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import (
    Database,
    Server,
    free_port,
    launch_server,
    make_database,
    start_server,
)
from tests.test_access import create_token, wait_until
from tests.test_gateway import FORMATS
from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI
from ump_mcp_llm_server.slugs import SlugTable, slug

KEY = "sk-mcp-upstream-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 30.0  # generous: the machine is shared


# -- the names ----------------------------------------------------------------------------


def test_slugs_follow_the_guides_scheme_in_ascii() -> None:
    assert slug("OpenAI GPT-4") == "openai_gpt_4"
    assert slug("  Claude -- Sonnet!! ") == "claude_sonnet"
    assert slug("Café crème") == "cafe_creme"
    assert slug("Модель") == "llm"
    assert len("query_" + slug("x" * 300) + "_999") <= 64


def test_colliding_names_get_suffixes_that_stay_with_their_connection() -> None:
    table = SlugTable()
    assert table.update([("1", "A b"), ("2", "A-b")]) == {"query_a_b": "1", "query_a_b_2": "2"}
    # a third arrives first in the order, the others keep their names
    named = table.update([("3", "a  B"), ("1", "A b"), ("2", "A-b")])
    assert named == {"query_a_b_3": "3", "query_a_b": "1", "query_a_b_2": "2"}
    # the holder of the plain name goes: nobody moves onto it
    assert table.update([("3", "a  B"), ("2", "A-b")]) == {"query_a_b_3": "3", "query_a_b_2": "2"}
    # a rename gives a new name; the old one is free again
    assert table.update([("3", "Other"), ("2", "A-b")]) == {"query_other": "3", "query_a_b_2": "2"}
    assert table.update([("4", "A_B"), ("3", "Other"), ("2", "A-b")])["query_a_b"] == "4"


# -- helpers ------------------------------------------------------------------------------


def connection_body(fake: Any, name: str, fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    fields = dict(fields)
    return {
        "name": name,
        "model_name": "fake-model",
        "max_retries": 0,
        "base_url": fake.url + fields.pop("path"),
        "api_key": KEY,
        "use_in_mcp": True,
        **fields,
        **extra,
    }


OPENAI = FORMATS["openai"][1]


def make(api: httpx.Client, fake: Any, name: str, **extra: Any) -> dict[str, Any]:
    made = api.post("/api/connections", json=connection_body(fake, name, OPENAI, **extra))
    assert made.status_code == 201, made.text
    created: dict[str, Any] = made.json()
    return created


class Notes:
    """What the client heard besides answers."""

    def __init__(self) -> None:
        self.changed = 0

    async def __call__(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.changed += 1


def mcp_env(server: Server, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMP_")}
    env.update({"UMP_AI_API_URL": server.url + "/api", "UMP_MCP_REFRESH_S": "0.5", **extra})
    return env


@asynccontextmanager
async def over_stdio(server: Server, **env: str) -> AsyncIterator[tuple[ClientSession, Notes]]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "ump_mcp_llm_server"], env=mcp_env(server, **env)
    )
    notes = Notes()
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, message_handler=notes) as session,
    ):
        await session.initialize()
        yield session, notes


@asynccontextmanager
async def over_http(
    url: str, token: str | None = None
) -> AsyncIterator[tuple[ClientSession, Notes]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    notes = Notes()
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=300)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, message_handler=notes) as session,
    ):
        await session.initialize()
        yield session, notes


async def tool_names(session: ClientSession) -> list[str]:
    return [tool.name for tool in (await session.list_tools()).tools]


async def eventually(check: Any) -> None:
    """Poll ``check`` (what the client sees) until it holds; the registry changes elsewhere."""
    with anyio.fail_after(WAIT_S):
        while not await check():  # noqa: ASYNC110
            await anyio.sleep(0.1)


def text(result: types.CallToolResult) -> str:
    return "".join(part.text for part in result.content if isinstance(part, types.TextContent))


def wait_for_sources(server: Server, connection_id: str) -> list[str]:
    query = (
        "SELECT source FROM llm_connection_usage WHERE connection_id = "
        f"'{connection_id.replace('-', '')}' OR connection_id = '{connection_id}'"
    )
    deadline = time.monotonic() + WAIT_S
    while not (rows := server.db.query(query)):
        assert time.monotonic() < deadline, "no usage row"
        time.sleep(0.05)
    return [str(row[0]) for row in rows]


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


# -- stdio --------------------------------------------------------------------------------


async def test_stdio_lists_a_tool_per_connection_and_pool(
    api: httpx.Client, server: Server, openai_fake: FakeOpenAI
) -> None:
    make(api, openai_fake, "OpenAI GPT-4", model_name="gpt-4o", description="Big one")
    second = make(api, openai_fake, "OpenAI-GPT 4")
    make(api, openai_fake, "Not for MCP", use_in_mcp=False)
    make(api, openai_fake, "Switched off", is_active=False)
    pool = api.post(
        "/api/pools",
        json={"name": "Production", "members": [{"connection_id": second["id"], "priority": 1}]},
    )
    assert pool.status_code == 201, pool.text
    async with over_stdio(server) as (session, _):
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(listed) == {
            "list_llm_connections",
            "test_llm_connection",
            "query_openai_gpt_4",
            "query_openai_gpt_4_2",
            "query_production",
        }
        gpt = listed["query_openai_gpt_4"]
        assert gpt.description is not None
        assert gpt.description.startswith("Query OpenAI GPT-4 (gpt-4o)")
        schema = gpt.input_schema
        assert schema["required"] == ["prompt"]
        assert set(schema["properties"]) == {"prompt", "system", "max_tokens", "temperature"}
        assert schema["properties"]["max_tokens"]["type"] == "integer"
        assert schema["properties"]["temperature"]["maximum"] == 2
        listing = await session.call_tool("list_llm_connections", {})
        assert not listing.is_error
        assert '"query_openai_gpt_4_2"' in text(listing) and second["id"] in text(listing)
        pooled = await session.call_tool("query_production", {"prompt": "Hi"})
        assert not pooled.is_error, text(pooled)
        assert text(pooled) == openai_fake.reply.text
        bad = await session.call_tool("query_openai_gpt_4", {"prompt": "Hi", "max_tokens": 0})
        assert bad.is_error and "max_tokens" in text(bad)
        unknown = await session.call_tool("query_nothing", {"prompt": "Hi"})
        assert unknown.is_error and "list the tools again" in text(unknown)


@pytest.mark.parametrize("wire", list(FORMATS))
async def test_a_call_reaches_each_wire_format_as_mcp(
    api: httpx.Client, server: Server, wire: str
) -> None:
    fake_class, fields = FORMATS[wire]
    with fake_class(api_key=KEY) as fake:
        made = api.post("/api/connections", json=connection_body(fake, f"{wire} model", fields))
        assert made.status_code == 201, made.text
        async with over_stdio(server) as (session, _):
            result = await session.call_tool(
                f"query_{wire}_model", {"prompt": "Hello", "system": "Be brief", "max_tokens": 20}
            )
            assert not result.is_error, text(result)
            assert text(result) == fake.reply.text
    assert await anyio.to_thread.run_sync(wait_for_sources, server, made.json()["id"]) == ["mcp"]


async def test_a_failing_upstream_is_an_error_result_with_the_reason(
    api: httpx.Client, server: Server, openai_fake: FakeOpenAI
) -> None:
    make(api, openai_fake, "Flaky")
    async with over_stdio(server) as (session, _):
        openai_fake.behaviour = Behaviour.rate_limited
        limited = await session.call_tool("query_flaky", {"prompt": "Hi"})
        assert limited.is_error
        assert "429" in text(limited) or "rate" in text(limited).lower()
        assert KEY not in text(limited)
        openai_fake.behaviour = Behaviour.server_error
        tested = await session.call_tool("test_llm_connection", {"name_or_id": "Flaky"})
        assert tested.is_error and '"success": false' in text(tested)
        openai_fake.behaviour = Behaviour.normal
        ok = await session.call_tool("test_llm_connection", {"name_or_id": "Flaky"})
        assert not ok.is_error and '"latency_ms"' in text(ok)


async def test_the_tool_list_follows_the_registry(
    api: httpx.Client, server: Server, openai_fake: FakeOpenAI
) -> None:
    make(api, openai_fake, "Steady")
    # the timer is far off: the registry's events (GET /api/events) drive the changes
    async with over_stdio(server, UMP_MCP_REFRESH_S="3600") as (session, notes):
        assert "query_steady" in await tool_names(session)
        made = make(api, openai_fake, "Newcomer")

        async def announced_and_listed() -> bool:
            return notes.changed >= 1 and "query_newcomer" in await tool_names(session)

        await eventually(announced_and_listed)
        heard = notes.changed
        assert api.post(f"/api/connections/{made['id']}/deactivate").status_code == 200

        async def gone() -> bool:
            return notes.changed > heard and "query_newcomer" not in await tool_names(session)

        await eventually(gone)
        called = await session.call_tool("query_newcomer", {"prompt": "Hi"})
        assert called.is_error


async def test_the_stdio_server_survives_the_main_server_restarting(
    tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    for db in make_database("sqlite", tmp_path):
        first = serve_on(db, tmp_path / "data", free_port())
        try:
            with first.client() as client:
                make(client, openai_fake, "Survivor")
            async with over_stdio(first) as (session, _):
                assert not (await session.call_tool("query_survivor", {"prompt": "a"})).is_error
                first.stop()
                down = await session.call_tool("query_survivor", {"prompt": "b"})
                assert down.is_error and "cannot reach" in text(down)
                again = serve_on(db, tmp_path / "data", int(first.url.rsplit(":", 1)[1]))
                try:
                    back = await session.call_tool("query_survivor", {"prompt": "c"})
                    assert not back.is_error, text(back)
                finally:
                    again.stop()
        finally:
            first.stop()


def serve_on(db: Database, data_dir: Path, port: int) -> Server:
    env = {"UMP_HEALTH_MONITOR": "false", "UMP_GATEWAY_REFRESH_S": "0.05"}
    return launch_server(db, data_dir, env, start_timeout_s=60, port=port)


# -- HTTP ---------------------------------------------------------------------------------


async def test_mcp_inside_the_server_lists_and_calls(
    api: httpx.Client, server: Server, openai_fake: FakeOpenAI
) -> None:
    made = make(api, openai_fake, "Mounted")
    async with over_http(server.url + "/mcp") as (session, notes):
        assert "query_mounted" in await tool_names(session)
        result = await session.call_tool("query_mounted", {"prompt": "Hi"})
        assert not result.is_error, text(result)
        assert text(result) == openai_fake.reply.text
        make(api, openai_fake, "Mounted later")

        async def announced() -> bool:
            return notes.changed >= 1 and "query_mounted_later" in await tool_names(session)

        await eventually(announced)
    assert await anyio.to_thread.run_sync(wait_for_sources, server, made["id"]) == ["mcp"]


async def test_the_http_transport_of_the_command(
    api: httpx.Client, server: Server, openai_fake: FakeOpenAI
) -> None:
    make(api, openai_fake, "Standalone")
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "ump_mcp_llm_server", "--transport", "http", "--port", str(port)],
        env=mcp_env(server),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        wait_until(lambda: _answers(url), timeout=WAIT_S)
        async with over_http(url) as (session, _):
            result = await session.call_tool("query_standalone", {"prompt": "Hi"})
            assert not result.is_error, text(result)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


def test_help_describes_both_transports_and_the_environment() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ump_mcp_llm_server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for word in ("stdio", "http", "UMP_AI_API_URL", "UMP_API_TOKEN", "UMP_MCP_REFRESH_S"):
        assert word in done.stdout


async def test_mcp_needs_a_token_and_shows_a_member_its_teams_tools(
    tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    for db in make_database("sqlite", tmp_path):
        server = start_server(db, tmp_path / "data", UMP_HEALTH_MONITOR="false")
        try:
            admin = create_token(server, "--name", "root", "--role", "admin")
            auth = {"Authorization": f"Bearer {admin}"}
            with server.client(headers=auth) as client:
                wait_until(lambda: client.get("/api/tokens").status_code == 200)

                def member(name: str, team: str) -> str:
                    made = client.post(
                        "/api/tokens", json={"name": name, "role": "member", "team": team}
                    )
                    token: str = made.json()["token"]
                    return token

                alice, carol = member("alice", "a"), member("carol", "b")
            with server.client(headers={"Authorization": f"Bearer {alice}"}) as as_alice:
                made = make(as_alice, openai_fake, "Team A model")
                shared = as_alice.post(f"/api/connections/{made['id']}/share", json={"team": "a"})
                assert shared.status_code == 200
            with server.client() as anonymous:
                refused = anonymous.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
                assert refused.status_code == 401
            async with over_http(server.url + "/mcp", alice) as (session, _):
                assert "query_team_a_model" in await tool_names(session)
                result = await session.call_tool("query_team_a_model", {"prompt": "Hi"})
                assert not result.is_error, text(result)
            async with over_http(server.url + "/mcp", carol) as (session, _):
                assert "query_team_a_model" not in await tool_names(session)
                refused_call = await session.call_tool("query_team_a_model", {"prompt": "Hi"})
                assert refused_call.is_error
        finally:
            server.stop()


def test_a_started_server_has_not_imported_mcp(tmp_path: Path) -> None:
    from tests.test_startup import _started

    assert "mcp" not in _started(tmp_path)["modules"]


# -- the example ----------------------------------------------------------------------------


def test_the_example_client_lists_and_calls_over_stdio(
    api: httpx.Client, server: Server, openai_fake: FakeOpenAI
) -> None:
    make(api, openai_fake, "Example")
    env = mcp_env(server)
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "mcp_client.py"),
            "--api-url",
            server.url + "/api",
            "--tool",
            "query_example",
            "--prompt",
            "Hello",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "query_example" in done.stdout
    assert openai_fake.reply.text in done.stdout
