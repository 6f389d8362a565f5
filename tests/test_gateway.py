"""The gateway driven by the official ``openai`` client, against every wire format's fake."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Database, Server, start_server
from tests.test_cli import run as cli
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import Behaviour, FakeUpstream, ToolCall
from tests.upstreams.google import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI

KEY = "sk-gateway-upstream-key-0123456789"
HELLO: list[Any] = [{"role": "user", "content": "Hello, how are you?"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]

# format → (fake, connection fields)
FORMATS: dict[str, tuple[type[FakeUpstream], dict[str, Any]]] = {
    "openai": (FakeOpenAI, {"connection_type": "openai", "path": "/v1"}),
    "anthropic": (FakeAnthropic, {"connection_type": "anthropic", "path": "/v1"}),
    "google": (FakeGemini, {"connection_type": "google", "path": "/v1beta"}),
    "ollama": (FakeOllama, {"connection_type": "local", "path": "", "api_format": "ollama"}),
}


@dataclass
class Upstream:
    fake: FakeUpstream
    connection: dict[str, Any]
    name: str


def connect(
    api: httpx.Client, fake: FakeUpstream, fields: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    fields = dict(fields)
    body = {
        "name": extra.pop("name", "gw"),
        "model_name": "fake-model",
        "max_retries": 0,
        "base_url": fake.url + fields.pop("path"),
        "api_key": KEY,
        **fields,
        **extra,
    }
    response = api.post("/api/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(params=list(FORMATS))
def upstream(request: pytest.FixtureRequest, api: httpx.Client) -> Iterator[Upstream]:
    fake_class, fields = FORMATS[str(request.param)]
    with fake_class(api_key=KEY) as fake:
        yield Upstream(fake, connect(api, fake, fields), "gw")


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0, timeout=10
    )


def usage_rows(server: Server, expected: int) -> list[tuple[Any, ...]]:
    """The usage rows, once the recorder has written ``expected`` of them."""
    deadline = time.monotonic() + 10
    sql = (
        "SELECT source, prompt_tokens, completion_tokens, success, error_kind, cost, ttft_ms,"
        " latency_ms FROM llm_connection_usage"
        " WHERE connection_id IN (SELECT id FROM llm_connections) ORDER BY id"
    )
    while True:
        rows = server.db.query(sql)
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def call(client: openai.OpenAI, stream: bool, received: list[str] | None = None) -> None:
    """One call to "gw"; a stream is read to its end, its text put in ``received``."""
    if not stream:
        client.chat.completions.create(model="gw", messages=HELLO)
        return
    for chunk in client.chat.completions.create(model="gw", messages=HELLO, stream=True):
        if received is not None and chunk.choices:
            received.append(chunk.choices[0].delta.content or "")


def test_chat_every_format(upstream: Upstream, client: openai.OpenAI, server: Server) -> None:
    answer = client.chat.completions.create(model="gw", messages=HELLO)
    assert answer.choices[0].message.content == upstream.fake.reply.text
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "gw"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 9)
    (row,) = usage_rows(server, 1)
    assert row[:5] == ("api", 12, 9, True, None)


def test_stream_every_format(upstream: Upstream, client: openai.OpenAI, server: Server) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gw", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == upstream.fake.reply.text
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["stop"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 9
    (row,) = usage_rows(server, 1)
    assert row[:5] == ("api", 12, 9, True, None)
    assert row[6] is not None and row[6] <= row[7]  # ttft within latency


def test_tool_calls_every_format(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"})
    answer = client.chat.completions.create(model="gw", messages=HELLO, tools=TOOLS)
    (call,) = answer.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert answer.choices[0].finish_reason == "tool_calls"

    arguments, names = "", []
    for chunk in client.chat.completions.create(
        model="gw", messages=HELLO, tools=TOOLS, stream=True
    ):
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if delta.function and delta.function.name:
                names.append(delta.function.name)
            arguments += (delta.function.arguments or "") if delta.function else ""
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"city": "Paris"}

    # …and the result goes back in the conversation, translated for the upstream.
    followup = client.chat.completions.create(
        model="gw",
        tools=TOOLS,
        messages=[
            *HELLO,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
        ],
    )
    assert followup.choices[0].message.tool_calls


def test_async_client(upstream: Upstream, server: Server) -> None:
    async def go() -> str:
        async with openai.AsyncOpenAI(
            base_url=f"{server.url}/v1", api_key="x", max_retries=0
        ) as client:
            answers = await asyncio.gather(
                *(client.chat.completions.create(model="gw", messages=HELLO) for _ in range(5))
            )
            stream = await client.chat.completions.create(model="gw", messages=HELLO, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            assert all(a.choices[0].message.content == text for a in answers)
            return text

    assert asyncio.run(go()) == upstream.fake.reply.text
    assert len(usage_rows(server, 6)) == 6


def test_models_lists_usable_connections(api: httpx.Client, client: openai.OpenAI) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        fields = FORMATS["openai"][1]
        connect(api, fake, fields, name="voice", use_in_livekit=True)
        connect(api, fake, fields, name="tools", use_in_mcp=True)
        connect(api, fake, fields, name="off", is_active=False)
        assert sorted(m.id for m in client.models.list()) == ["tools", "voice"]
        livekit = client.with_options(default_headers={"X-UMP-Source": "livekit"})
        assert [m.id for m in livekit.models.list()] == ["voice"]


def test_refusals(api: httpx.Client, client: openai.OpenAI) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        fields = FORMATS["openai"][1]
        created = connect(api, fake, fields, name="gw")
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="nope", messages=HELLO)
        assert missing.value.code == "model_not_found"

        livekit = client.with_options(default_headers={"X-UMP-Source": "livekit"})
        with pytest.raises(openai.PermissionDeniedError) as disabled:
            livekit.chat.completions.create(model="gw", messages=HELLO)
        assert disabled.value.code == "integration_disabled"
        assert "use_in_livekit" in disabled.value.message
        api.patch(f"/api/connections/{created['id']}", json={"use_in_livekit": True})
        assert livekit.chat.completions.create(model="gw", messages=HELLO).choices

        api.post(f"/api/connections/{created['id']}/deactivate")
        with pytest.raises(openai.PermissionDeniedError) as inactive:
            client.chat.completions.create(model="gw", messages=HELLO)
        assert inactive.value.code == "connection_inactive"
        api.post(f"/api/connections/{created['id']}/activate")
        assert client.chat.completions.create(model=created["id"], messages=HELLO).choices

        odd = client.with_options(default_headers={"X-UMP-Source": "fax"})
        with pytest.raises(openai.BadRequestError) as source:
            odd.chat.completions.create(model="gw", messages=HELLO)
        assert source.value.code == "invalid_source"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "gw", "messages": []}, "messages"),
        ({"model": "gw", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "gw", "messages": HELLO, "n": 2}, "n"),
        ({"model": "gw", "messages": HELLO, "temperature": 9}, "temperature"),
        ({"model": "gw", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        (
            {
                "model": "gw",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                    }
                ],
            },
            "messages[0].content",
        ),
    ],
)
def test_bad_requests_are_400_naming_the_param(
    api: httpx.Client, server: Server, body: dict[str, Any], param: str
) -> None:
    response = api.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    broken = api.post(
        "/v1/chat/completions", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400


@pytest.mark.parametrize(
    ("behaviour", "error", "status", "code"),
    [
        (Behaviour.unauthorized, openai.InternalServerError, 502, "auth"),
        (Behaviour.model_not_found, openai.InternalServerError, 502, "not_found"),
        (Behaviour.rate_limited, openai.RateLimitError, 429, "rate_limited"),
        (Behaviour.server_error, openai.InternalServerError, 502, "server_error"),
        (Behaviour.hang, openai.InternalServerError, 504, "timeout"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_upstream_failures(
    api: httpx.Client,
    client: openai.OpenAI,
    server: Server,
    behaviour: Behaviour,
    error: type[openai.APIStatusError],
    status: int,
    code: str,
    stream: bool,
) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        connect(api, fake, FORMATS["openai"][1], timeout=0.5)
        fake.behaviour = behaviour
        with pytest.raises(error) as caught:
            call(client, stream)
    assert caught.value.status_code == status
    assert caught.value.code == code
    assert KEY not in str(caught.value.body)
    if behaviour is Behaviour.rate_limited:
        assert caught.value.response.headers["retry-after"] == "1"
    (row,) = usage_rows(server, 1)
    assert (row[3], row[4]) == (False, code)


def test_stream_cut_midway_ends_with_an_error_event(
    api: httpx.Client, client: openai.OpenAI, server: Server
) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        connect(api, fake, FORMATS["openai"][1])
        fake.behaviour = Behaviour.cut_stream
        received: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            call(client, True, received)
        assert "".join(received)  # some text arrived before the break
        assert "broke off" in caught.value.message
    (row,) = usage_rows(server, 1)
    assert (row[3], row[4]) == (False, "bad_response")


def test_connection_defaults_apply(api: httpx.Client, client: openai.OpenAI) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        connect(api, fake, FORMATS["openai"][1], temperature=0.2, max_tokens=77)
        client.chat.completions.create(model="gw", messages=HELLO)
        sent = fake.requests[-1].body
        assert (sent["temperature"], sent["max_tokens"]) == (0.2, 77)
        client.chat.completions.create(model="gw", messages=HELLO, temperature=1.0, max_tokens=5)
        sent = fake.requests[-1].body
        assert (sent["temperature"], sent["max_tokens"]) == (1.0, 5)
        assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_usage_is_recorded_with_source_and_cost(
    api: httpx.Client, client: openai.OpenAI, server: Server
) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        created = connect(
            api,
            fake,
            FORMATS["openai"][1],
            use_in_mcp=True,
            input_cost_per_million=3.0,
            output_cost_per_million=15.0,
        )
        mcp = client.with_options(default_headers={"X-UMP-Source": "mcp"})
        for _ in range(3):
            mcp.chat.completions.create(model="gw", messages=HELLO)
        fake.behaviour = Behaviour.server_error
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gw", messages=HELLO)
    rows = usage_rows(server, 4)
    assert [r[0] for r in rows] == ["mcp", "mcp", "mcp", "api"]
    assert rows[0][5] == pytest.approx((12 * 3 + 9 * 15) / 1e6)
    assert rows[3][5] is None  # a failed call has no tokens, so no cost
    state = api.get(f"/api/connections/{created['id']}").json()
    assert state["last_used_at"] is not None

    report = api.get(
        f"/api/connections/{created['id']}/usage", params={"window": "1h", "bucket": "5m"}
    ).json()
    totals = report["totals"]
    assert (totals["requests"], totals["successes"], totals["failures"]) == (4, 3, 1)
    assert totals["success_rate"] == 0.75
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (36, 27)
    assert totals["cost"] == pytest.approx(3 * (12 * 3 + 9 * 15) / 1e6)
    assert totals["latency_p50_ms"] is not None
    assert report["bucket_seconds"] == 300
    assert len(report["buckets"]) in (12, 13)
    assert sum(b["requests"] for b in report["buckets"]) == 4

    across = api.get("/api/usage", params={"window": "24h"}).json()
    assert across["totals"]["requests"] == 4
    (one,) = across["connections"]
    assert (one["name"], one["requests"]) == ("gw", 4)
    bad = api.get("/api/usage", params={"window": "forever"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "window"
    too_fine = api.get("/api/usage", params={"window": "31d", "bucket": "1m"})
    assert too_fine.json()["error"]["field"] == "bucket"


def test_changes_from_another_process_reach_the_gateway(
    fresh_database: Database, tmp_path: Path
) -> None:
    running = start_server(
        fresh_database, tmp_path / "data", UMP_GATEWAY_REFRESH_S="0.2", UMP_USAGE_FLUSH_S="1"
    )
    try:
        with FakeOpenAI(api_key=None) as fake:
            added = cli(
                "connections",
                "add",
                "--name",
                "from-cli",
                "--type",
                "remote",
                "--base-url",
                f"{fake.url}/v1",
                "--model",
                "fake-model",
                "--database-url",
                fresh_database.url,
                data_dir=tmp_path / "data",
            )
            assert added.returncode == 0, added.stderr
            client = openai.OpenAI(base_url=f"{running.url}/v1", api_key="x", max_retries=0)
            deadline = time.monotonic() + 10
            while "from-cli" not in [m.id for m in client.models.list()]:
                assert time.monotonic() < deadline, "the gateway never saw the new connection"
                time.sleep(0.1)
            for _ in range(3):
                client.chat.completions.create(model="from-cli", messages=HELLO)
        # A clean stop writes the usage still buffered.
        running.stop()
        assert fresh_database.query("SELECT count(*) FROM llm_connection_usage") == [(3,)]
    finally:
        running.stop()


def test_renames_and_deletes_reach_the_gateway_at_once(
    api: httpx.Client, client: openai.OpenAI
) -> None:
    """The directory updates one connection in place: the old name stops resolving, the new one
    and the id resolve, and a deleted connection is gone under every key."""
    with FakeOpenAI(api_key=KEY) as fake:
        fields = FORMATS["openai"][1]
        created = connect(api, fake, fields, name="before")
        connect(api, fake, fields, name="bystander")
        client.chat.completions.create(model="before", messages=HELLO)
        renamed = api.patch(f"/api/connections/{created['id']}", json={"name": "after"})
        assert renamed.status_code == 200, renamed.text
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="before", messages=HELLO)
        for model in ("after", "AFTER", created["id"], "bystander"):
            client.chat.completions.create(model=model, messages=HELLO)
        assert api.delete(f"/api/connections/{created['id']}").status_code == 204
        for model in ("after", created["id"]):
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model=model, messages=HELLO)
        client.chat.completions.create(model="bystander", messages=HELLO)
