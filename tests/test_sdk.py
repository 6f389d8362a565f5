"""The Python SDK (``ump_llm_connections``) against the live server, on SQLite and PostgreSQL:
finding connections and pools, calling them through the gateway, its errors, the sync facade."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import ump_llm_connections
from tests.conftest import Server, free_port
from tests.upstreams.base import Behaviour, ToolCall
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections import (
    ConnectionInactive,
    ConnectionManager,
    ConnectionNotFound,
    GatewayError,
    IntegrationNotEnabled,
    ServerUnreachable,
)
from ump_llm_connections import sync as sdk_sync

KEY = "sk-sdk-upstream-key-0123456789abcdef"


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def manager(server: Server) -> ConnectionManager:
    return ConnectionManager(api_url=f"{server.url}/api")


def make(api: httpx.Client, upstream: FakeOpenAI, name: str, **extra: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "connection_type": "openai",
        "base_url": upstream.url + "/v1",
        "model_name": "fake-model",
        "api_key": KEY,
        "max_retries": 0,
        "is_active": True,
        **extra,
    }
    made = api.post("/api/connections", json=body)
    assert made.status_code == 201, made.text
    created: dict[str, Any] = made.json()
    return created


def sources(server: Server, connection_id: str) -> list[str]:
    rows = server.db.query(
        "SELECT source FROM llm_connection_usage "
        f"WHERE connection_id = '{connection_id.replace('-', '')}' "
        f"OR connection_id = '{connection_id}' ORDER BY id"
    )
    return [str(row[0]) for row in rows]


def wait_for_sources(server: Server, connection_id: str, count: int) -> list[str]:
    import time

    deadline = time.monotonic() + 10
    while len(found := sources(server, connection_id)) < count:
        assert time.monotonic() < deadline, f"usage rows: {found}"
        time.sleep(0.05)
    return found


def test_importing_the_sdk_loads_nothing_of_the_server() -> None:
    heavy = ("fastapi", "starlette", "sqlalchemy", "aiohttp", "openai", "ump_llm_connections.api")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, ump_llm_connections\nprint([m for m in {heavy!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
    assert "get_connection" in ump_llm_connections.__all__
    assert "ConnectionManager" in ump_llm_connections.__all__


def test_the_manager_reads_its_address_and_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UMP_AI_API_URL", raising=False)
    monkeypatch.delenv("UMP_API_TOKEN", raising=False)
    default = ConnectionManager()
    assert (default.api_url, default.gateway_url, default.token) == (
        "http://localhost:8002/api",
        "http://localhost:8002/v1",
        None,
    )
    monkeypatch.setenv("UMP_AI_API_URL", "http://127.0.0.1:9/api/")
    monkeypatch.setenv("UMP_API_TOKEN", "ump_secret")
    configured = ConnectionManager()
    assert configured.api_url == "http://127.0.0.1:9/api"
    assert configured.token == "ump_secret"
    assert "ump_secret" not in repr(configured)
    with pytest.raises(ValueError, match="UMP_AI_API_URL"):
        ConnectionManager("localhost:8002/api")


async def test_connections_are_found_by_integration_type_tag_and_state(
    api: httpx.Client, upstream: FakeOpenAI, manager: ConnectionManager
) -> None:
    make(api, upstream, "Voice", use_in_livekit=True, tags=["voice", "prod"])
    make(api, upstream, "Tools", use_in_mcp=True, tags=["prod"])
    make(api, upstream, "Off", use_in_mcp=True, is_active=False)

    def names(found: list[ump_llm_connections.Connection]) -> list[str]:
        return [c.name for c in found]

    assert names(await manager.get_connections()) == ["Off", "Tools", "Voice"]
    assert names(await manager.get_connections(use_in_livekit=True)) == ["Voice"]
    assert names(await manager.get_connections(use_in_mcp=True, is_active=True)) == ["Tools"]
    assert names(await manager.get_connections(tags=["prod"])) == ["Tools", "Voice"]
    assert names(await manager.get_connections(tags=["prod", "voice"])) == ["Voice"]
    assert names(await manager.get_connections(connection_type="anthropic")) == []
    voice = (await manager.get_connections(use_in_livekit=True))[0]
    assert (voice.model_name, voice.connection_type, voice.status) == (
        "fake-model",
        "openai",
        "unknown",
    )
    assert voice.source == "livekit"
    assert KEY not in repr(voice)


async def test_generate_goes_through_the_gateway_as_the_integration_it_was_fetched_for(
    api: httpx.Client, server: Server, upstream: FakeOpenAI, manager: ConnectionManager
) -> None:
    made = make(api, upstream, "Claude Sonnet", use_in_automation=True, temperature=0.2)
    by_name = await manager.get_connection("Claude Sonnet", use_in_automation=True)
    by_id = await manager.get_connection(made["id"])
    assert by_id.name == by_name.name == "Claude Sonnet"
    assert by_name.temperature == 0.2

    response = await by_name.generate(prompt="Analyze this ticket", system="Be brief", max_tokens=7)
    assert response.text == upstream.reply.text
    assert response.usage is not None
    assert response.usage.total_tokens == 21
    assert response.latency_ms > 0
    assert response.connection is by_name
    sent = upstream.requests[-1].body
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Analyze this ticket"},
    ]
    assert sent["max_tokens"] == 7

    chunks = [chunk async for chunk in by_id.stream(prompt="Again")]
    assert len(chunks) > 1
    assert "".join(chunks) == upstream.reply.text
    found = await asyncio.to_thread(wait_for_sources, server, made["id"], 2)
    assert found == ["automation", "api"]


async def test_tool_calls_come_back_parsed(
    api: httpx.Client, upstream: FakeOpenAI, manager: ConnectionManager
) -> None:
    make(api, upstream, "Tooled")
    upstream.reply.tool_call = ToolCall("get_ticket", {"ticket_id": "T-42"})
    connection = await manager.get_connection("Tooled")
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_ticket",
                "parameters": {"type": "object", "properties": {"ticket_id": {"type": "string"}}},
            },
        }
    ]
    response = await connection.generate(prompt="Which ticket?", tools=tools)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("get_ticket", {"ticket_id": "T-42"})
    ]
    assert response.finish_reason == "tool_calls"
    with pytest.raises(ValueError, match="prompt or messages"):
        await connection.generate()


async def test_a_pool_works_wherever_a_connection_does(
    api: httpx.Client, upstream: FakeOpenAI, manager: ConnectionManager
) -> None:
    first = make(api, upstream, "Member A", use_in_mcp=True)
    second = make(api, upstream, "Member B", use_in_mcp=True)
    made = api.post(
        "/api/pools",
        json={
            "name": "Fast Pool",
            "strategy": "priority",
            "members": [{"connection_id": first["id"]}, {"connection_id": second["id"]}],
        },
    )
    assert made.status_code == 201, made.text
    pool = await manager.get_connection("Fast Pool", use_in_mcp=True)
    assert (pool.kind, pool.source) == ("pool", "mcp")
    assert (await pool.generate(prompt="hi")).text == upstream.reply.text
    assert [p.name for p in await manager.get_pools()] == ["Fast Pool"]


async def test_each_failure_raises_an_error_that_says_what_to_do(
    api: httpx.Client, upstream: FakeOpenAI, manager: ConnectionManager
) -> None:
    made = make(api, upstream, "Local Ollama", use_in_livekit=False)
    with pytest.raises(ConnectionNotFound, match="connections list"):
        await manager.get_connection("No Such Thing")
    with pytest.raises(IntegrationNotEnabled, match="use_in_livekit") as disabled:
        await manager.get_connection("Local Ollama", use_in_livekit=True)
    assert made["id"] in disabled.value.message

    connection = await manager.get_connection("Local Ollama")
    upstream.behaviour = Behaviour.server_error
    with pytest.raises(GatewayError) as failed:
        await connection.generate(prompt="hi")
    assert failed.value.status is not None
    assert failed.value.status >= 500
    assert KEY not in failed.value.message
    upstream.behaviour = Behaviour.normal

    assert api.post(f"/api/connections/{made['id']}/deactivate").status_code == 200
    with pytest.raises(ConnectionInactive, match="activate"):
        await manager.get_connection("Local Ollama")
    with pytest.raises(ConnectionInactive):  # fetched while active, switched off since
        await connection.generate(prompt="hi")

    gone = ConnectionManager(api_url=f"http://127.0.0.1:{free_port()}/api")
    with pytest.raises(ServerUnreachable, match="UMP_AI_API_URL"):
        await gone.get_connections()
    gone_connection = ump_llm_connections.Connection.from_api(made, gone, "api")
    with pytest.raises(ServerUnreachable, match="make run"):
        await gone_connection.generate(prompt="hi")


async def test_the_test_route_is_one_call_away(
    api: httpx.Client, upstream: FakeOpenAI, manager: ConnectionManager
) -> None:
    make(api, upstream, "Testable")
    connection = await manager.get_connection("Testable")
    result = await connection.test(prompt="ping", max_tokens=5)
    assert result["success"] is True
    assert result["response_preview"]
    assert upstream.requests[-1].body["max_tokens"] == 5


def test_the_sync_facade_blocks_and_streams(
    api: httpx.Client, upstream: FakeOpenAI, server: Server
) -> None:
    make(api, upstream, "Notebook", use_in_automation=True)
    manager = sdk_sync.ConnectionManager(api_url=f"{server.url}/api")
    connection = manager.get_connection("Notebook", use_in_automation=True)
    assert connection.name == "Notebook"
    assert connection.generate(prompt="hi").text == upstream.reply.text
    assert "".join(connection.stream(prompt="hi")) == upstream.reply.text
    assert [c.name for c in manager.get_connections(use_in_automation=True)] == ["Notebook"]
    manager.close()


def test_one_manager_serves_one_event_loop_after_another(
    api: httpx.Client, upstream: FakeOpenAI, manager: ConnectionManager
) -> None:
    make(api, upstream, "Script")

    async def once() -> str:
        connection = await manager.get_connection("Script")
        return (await connection.generate(prompt="hi")).text

    assert asyncio.run(once()) == asyncio.run(once()) == upstream.reply.text


async def test_events_follow_the_registry(
    api: httpx.Client, upstream: FakeOpenAI, manager: ConnectionManager
) -> None:
    events = manager.events(types=["connection.created", "connection.deleted"])
    assert (await anext(events))["type"] == "stream.opened"
    made = await asyncio.to_thread(make, api, upstream, "Followed")
    created = await asyncio.wait_for(anext(events), 30)
    assert (created["type"], created["data"]["name"]) == ("connection.created", "Followed")
    await asyncio.to_thread(api.patch, f"/api/connections/{made['id']}", json={"tags": ["x"]})
    await asyncio.to_thread(api.delete, f"/api/connections/{made['id']}")
    deleted = await asyncio.wait_for(anext(events), 30)  # the update was filtered out
    assert deleted["type"] == "connection.deleted"
    await events.aclose()
