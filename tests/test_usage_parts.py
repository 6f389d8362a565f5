"""Usage in parts: each wire format's counts mapped to one ``Usage``, priced part by part, stored,
reported and given back the OpenAI way; and a stream folded back into one answer."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from tests.conftest import Server
from tests.test_gateway import FORMATS as GATEWAY_FORMATS
from tests.test_gateway import KEY as GATEWAY_KEY
from tests.test_gateway import connect
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import FakeUpstream
from tests.upstreams.google import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.domain import SecretText
from ump_llm_connections.gateway.wire import ChunkWriter, usage_json
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.collect import Collector
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.target import Target, create_http_session
from ump_llm_connections.providers.types import (
    ChatRequest,
    Message,
    Prices,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

KEY = "sk-usage-parts-key-0123456789abcdef"
HELLO = ChatRequest(messages=[Message("user", "Hello")], max_tokens=20)

# format → fake, path, and the parts it reports of a 12-token prompt (4 read from the cache,
# 2 written to it) and a 9-token answer (3 of them thinking): each format has its own words.
PARTS: dict[str, tuple[type[FakeUpstream], str, tuple[int, int, int]]] = {
    "openai": (FakeOpenAI, "/v1", (4, 0, 3)),  # no cache writes, reasoning counted
    "anthropic": (FakeAnthropic, "/v1", (4, 2, 0)),  # reads and writes; thinking not apart
    "google": (FakeGemini, "/v1beta", (4, 0, 3)),  # cached content and thoughts
    "ollama": (FakeOllama, "", (0, 0, 0)),  # the prompt and the answer only
}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = create_http_session()
    yield session
    await session.close()


def cached(fake: FakeUpstream) -> FakeUpstream:
    fake.reply.cached_tokens = 4
    fake.reply.cache_write_tokens = 2
    fake.reply.reasoning_tokens = 3
    return fake


@pytest.mark.parametrize("api_format", list(PARTS))
async def test_each_format_maps_its_counts_to_the_parts(
    api_format: str, http: aiohttp.ClientSession
) -> None:
    fake_class, path, (read, write, reasoning) = PARTS[api_format]
    with cached(fake_class(api_key=KEY)) as fake:
        target = Target(
            api_format, fake.url + path, "fake-model", SecretText(KEY), timeout=5, max_retries=0
        )
        answer = await adapter_for(target, http).chat(HELLO)
        streamed = [c.usage async for c in adapter_for(target, http).stream(HELLO) if c.usage]
    for usage in (answer.usage, streamed[-1]):
        assert (usage.input_tokens, usage.output_tokens) == (12, 9)
        parts = (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens)
        assert parts == (read, write, reasoning)
        assert usage.total_tokens == 21
    if api_format == "openai":  # the counts not mapped to a part stay, under their own names
        assert answer.usage.details["completion_tokens_details.audio_tokens"] == 0
        assert "prompt_tokens" not in answer.usage.details


async def test_an_unknown_anthropic_block_is_refused_not_dropped(
    http: aiohttp.ClientSession,
) -> None:
    with FakeAnthropic(api_key=KEY) as fake:
        target = Target("anthropic", fake.url + "/v1", "fake-model", SecretText(KEY), max_retries=0)
        adapter = adapter_for(target, http)
        fake.first_block = (
            {"type": "thinking", "thinking": "", "signature": ""},
            {"type": "thinking_delta", "thinking": "Let me see."},
        )
        assert (await adapter.chat(HELLO)).text == fake.reply.text  # thinking is not passed on
        chunks = [c async for c in adapter.stream(HELLO)]
        assert "".join(c.text for c in chunks) == fake.reply.text
        fake.first_block = (
            {"type": "hologram", "frames": 3},
            {"type": "hologram_delta", "frames": 1},
        )
        for attempt in (adapter.chat(HELLO), anext(aiter(adapter.stream(HELLO)))):
            with pytest.raises(ProviderError) as raised:
                await attempt
            assert raised.value.kind is ErrorKind.bad_response
            assert "content block of type 'hologram'" in raised.value.message
        fake.first_block = ({"type": "text", "text": ""}, {"type": "hologram_delta"})
        with pytest.raises(ProviderError, match="content delta of type 'hologram_delta'"):
            [c async for c in adapter.stream(HELLO)]


async def test_an_anthropic_tool_use_without_an_input_object_is_refused(
    http: aiohttp.ClientSession,
) -> None:
    target = Target("anthropic", "http://127.0.0.1:9/v1", "m", SecretText(KEY))
    block = {"type": "tool_use", "id": "t1", "name": "get_weather", "input": "Paris"}
    with pytest.raises(ProviderError) as raised:
        adapter_for(target, http).parse_response({"content": [block]})
    assert raised.value.kind is ErrorKind.bad_response
    assert "input is not an object" in raised.value.message


async def test_a_gemini_part_nothing_can_carry_is_refused(http: aiohttp.ClientSession) -> None:
    adapter = adapter_for(Target("google", "http://127.0.0.1:9", "m", SecretText(KEY)), http)

    def answer(*parts: dict[str, Any]) -> dict[str, Any]:
        return {"candidates": [{"content": {"parts": list(parts)}, "finishReason": "STOP"}]}

    thought = {"text": "Let me think.", "thought": True, "thoughtSignature": "c2ln"}
    said = adapter.parse_response(answer(thought, {"text": "Yes."}, {"thoughtSignature": "c2ln"}))
    assert said.text == "Yes."  # the thinking is not passed on, and the signature is no content
    code = {"executableCode": {"language": "PYTHON", "code": "print(1)"}}
    with pytest.raises(ProviderError) as raised:
        adapter.parse_response(answer({"text": "Here:"}, code))
    assert raised.value.kind is ErrorKind.bad_response
    assert "part of type 'executableCode'" in raised.value.message


@pytest.mark.parametrize(
    ("usage", "prices", "cost"),
    [
        # 1000 prompt tokens, 600 of them read from the cache, 100 written; 200 answer tokens
        (Usage(1000, 200, 600, 100), Prices(3.0, 15.0, 0.3, 3.75), 300 * 3 + 180 + 375 + 3000),
        (Usage(1000, 200, 600, 100), Prices(3.0, 15.0), 1000 * 3 + 200 * 15),  # cache at input's
        (Usage(1000, 200), Prices(3.0, 15.0, 0.3, 3.75), 1000 * 3 + 200 * 15),
        (Usage(1000, 200, 600), Prices(None, 15.0, 0.3), 600 * 0.3 + 200 * 15),
        (Usage(1000, 200, 600), Prices(), None),  # no price
        (Usage(), Prices(3.0, 15.0), None),  # no counts: no cost, rather than 0
        (Usage(None, 50), Prices(3.0, 15.0), 50 * 15),
    ],
)
def test_each_part_has_its_price(usage: Usage, prices: Prices, cost: float | None) -> None:
    found = usage.cost(prices)
    assert found == (None if cost is None else pytest.approx(cost / 1e6))


def test_usage_json_gives_the_parts_the_openai_way() -> None:
    assert usage_json(None) is None
    assert usage_json(Usage()) is None  # no counts reported: none invented
    assert usage_json(Usage(12, 9, 4, 2, 3)) == {
        "prompt_tokens": 12,
        "completion_tokens": 9,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    writer = ChunkWriter(model="gw", response_id="r1", created=1)
    event = writer.usage(Usage(12, 9, 4))
    body = orjson.loads(event.removeprefix(b"data: ").strip())
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 4


def test_the_collector_times_the_first_token_and_joins_the_answer() -> None:
    now = [10.0]
    collected = Collector(clock=lambda: now[0])
    now[0] = 10.5
    collected.add(StreamChunk())  # nothing yet: no first token
    now[0] = 11.0
    collected.add(StreamChunk(text="Hel"))
    now[0] = 12.0
    collected.add(StreamChunk(tool_calls=[ToolCallDelta(0, "c1", "f", '{"a"')]))
    collected.add(StreamChunk(text="lo", tool_calls=[ToolCallDelta(0, arguments=": 1}")]))
    collected.add(StreamChunk(finish_reason="tool_calls", usage=Usage(5, 4, 2)))
    assert collected.ttft_ms == pytest.approx(1000)
    assert collected.elapsed_ms() == pytest.approx(2000)
    answer = collected.response()
    assert answer.text == "Hello"
    assert answer.tool_calls == [ToolCall("c1", "f", '{"a": 1}')]
    assert (answer.finish_reason, answer.usage) == ("tool_calls", Usage(5, 4, 2))
    assert collected.chars == 5


def test_the_collector_keeps_no_more_text_than_asked() -> None:
    collected = Collector(keep_chars=4)
    for piece in ("abc", "def", "ghi"):
        collected.add(StreamChunk(text=piece))
    assert collected.response().text == "abcd"
    assert collected.chars == 9
    silent = Collector(keep_chars=0)
    silent.add(StreamChunk(text="abc", usage=Usage(1, 2)))
    assert (silent.response().text, silent.usage, silent.chars) == ("", Usage(1, 2), 3)


def stored_parts(server: Server, connection_id: str) -> list[tuple[Any, ...]]:
    sql = (
        "SELECT prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,"
        " reasoning_tokens, cost FROM llm_connection_usage"
        f" WHERE connection_id = '{connection_id}' ORDER BY id"
    )
    if server.db.backend == "sqlite":  # SQLite keeps UUIDs as 32 hex digits
        sql = sql.replace(connection_id, uuid.UUID(connection_id).hex)
    deadline = time.monotonic() + 10
    while True:
        rows = server.db.query(sql)
        if len(rows) >= 2 or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


@pytest.fixture
def anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=GATEWAY_KEY) as fake:
        yield fake


def test_the_gateway_prices_stores_reports_and_returns_the_parts(
    api: httpx.Client, server: Server, anthropic: FakeAnthropic
) -> None:
    cached(anthropic)
    created = connect(
        api,
        anthropic,
        {**GATEWAY_FORMATS["anthropic"][1], "name": "cached"},
        input_cost_per_million=3.0,
        output_cost_per_million=15.0,
        cache_read_cost_per_million=0.3,
        cache_write_cost_per_million=3.75,
    )
    assert created["cache_read_cost_per_million"] == 0.3
    chat = {"model": "cached", "messages": [{"role": "user", "content": "Hello"}]}
    plain = api.post("/v1/chat/completions", json=chat)
    assert plain.status_code == 200, plain.text
    usage = plain.json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 4, "cache_write_tokens": 2}
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (12, 9)
    streamed = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    with api.stream("POST", "/v1/chat/completions", json=streamed) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: {")]
    assert orjson.loads(events[-1])["usage"] == usage
    cost = (6 * 3.0 + 4 * 0.3 + 2 * 3.75 + 9 * 15.0) / 1e6  # 6 of the 12 prompt tokens uncached
    rows = stored_parts(server, created["id"])
    assert [r[:5] for r in rows] == [(12, 9, 4, 2, 0)] * 2
    assert [r[5] for r in rows] == [pytest.approx(cost)] * 2
    totals = api.get(f"/api/connections/{created['id']}/usage", params={"window": "1h"}).json()[
        "totals"
    ]
    assert (totals["cache_read_tokens"], totals["cache_write_tokens"]) == (8, 4)
    assert totals["cost"] == pytest.approx(2 * cost)
