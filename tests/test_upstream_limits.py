"""Bounded upstream reads: an answer, an error body, a model list and each event of a stream are
read up to a limit, and an upstream that sends more gets ``bad_response`` naming the limit and its
setting, not a server that grows without end. Adapter by adapter, then through the gateway (a
502 before the first chunk, an error event after it), then the server's memory under a 200 MB
answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import httpx
import orjson
import pytest

from tests.conftest import Server, make_database, start_server
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import Behaviour, FakeUpstream
from tests.upstreams.google import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.domain import SecretText
from ump_llm_connections.health import probe
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.target import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Target,
    create_http_session,
)
from ump_llm_connections.providers.types import ChatRequest, Message

KEY = "sk-limits-test-key-0123456789abcdef"
LIMIT = 256 * 1024
FORMATS = {
    "openai": (FakeOpenAI, "/v1"),
    "anthropic": (FakeAnthropic, "/v1"),
    "google": (FakeGemini, "/v1beta"),
    "ollama": (FakeOllama, ""),
}
HELLO = ChatRequest(messages=[Message("user", "Hello")], max_tokens=50)


@pytest.fixture(params=list(FORMATS))
def fake(request: pytest.FixtureRequest) -> Iterator[tuple[FakeUpstream, Target]]:
    fake_class, path = FORMATS[str(request.param)]
    with fake_class(api_key=KEY) as running:
        target = Target(
            api_format=request.param,
            base_url=running.url + path,
            model="fake-model",
            api_key=SecretText(KEY),
            timeout=5,
            max_retries=0,
            max_response_bytes=LIMIT,
        )
        yield running, target


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = create_http_session()
    yield session
    await session.close()


async def _call(target: Target, http: aiohttp.ClientSession, call: str) -> list[str]:
    """The text received, however much of it arrived before a failure is raised."""
    adapter = adapter_for(target, http)
    if call == "chat":
        return [(await adapter.chat(HELLO)).text]
    if call == "models":
        return await adapter.list_models()
    return [chunk.text async for chunk in adapter.stream(HELLO)]


async def _failure(target: Target, http: aiohttp.ClientSession, call: str) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await _call(target, http, call)
    return caught.value


@pytest.mark.parametrize("call", ["chat", "stream", "models"])
async def test_an_endless_answer_stops_at_the_limit(
    fake: tuple[FakeUpstream, Target], http: aiohttp.ClientSession, call: str
) -> None:
    """Endless, with no newline: as a JSON answer, a model list and one endless stream line."""
    upstream, target = fake
    upstream.behaviour = Behaviour.huge_body
    error = await _failure(target, http, call)
    assert error.kind is ErrorKind.bad_response
    assert f"passed {LIMIT} bytes" in error.message
    assert "UMP_MAX_UPSTREAM_BYTES" in error.message


async def test_the_default_limit_holds_too(
    fake: tuple[FakeUpstream, Target], http: aiohttp.ClientSession
) -> None:
    upstream, target = fake
    upstream.behaviour = Behaviour.huge_body
    error = await _failure(
        replace(target, max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES), http, "chat"
    )
    assert error.kind is ErrorKind.bad_response
    assert "UMP_MAX_UPSTREAM_BYTES" in error.message


@pytest.mark.parametrize("call", ["chat", "stream", "models"])
async def test_an_endless_error_body_is_not_read_to_its_end(
    fake: tuple[FakeUpstream, Target], http: aiohttp.ClientSession, call: str
) -> None:
    """The status says what happened; reading on would only wait out the timeout."""
    upstream, target = fake
    upstream.behaviour = Behaviour.huge_body
    upstream.huge_status = 500
    error = await _failure(replace(target, timeout=1), http, call)
    assert (error.kind, error.status) == (ErrorKind.server_error, 500)


async def test_a_large_event_within_the_limit_is_read(
    fake: tuple[FakeUpstream, Target], http: aiohttp.ClientSession
) -> None:
    """aiohttp's own line reader gives up past 512 KiB; an event below our limit still passes."""
    upstream, target = fake
    upstream.reply.text = "word " + "y" * 700_000  # the second stream event is ~700 KB
    roomy = replace(target, max_response_bytes=2_000_000)
    for call in ("stream", "chat"):
        assert "".join(await _call(roomy, http, call)) == upstream.reply.text


async def test_an_event_past_the_limit_is_bad_response(
    fake: tuple[FakeUpstream, Target], http: aiohttp.ClientSession
) -> None:
    upstream, target = fake
    upstream.reply.text = "word " + "y" * 700_000
    error = await _failure(target, http, "stream")
    assert error.kind is ErrorKind.bad_response
    assert "an event of the stream" in error.message
    assert f"passed {LIMIT} bytes" in error.message


# -- through the server ---------------------------------------------------------------------

CHAT = {"model": "big", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def big(api: httpx.Client) -> Iterator[FakeOpenAI]:
    """An OpenAI connection named "big" (for /v1) to a fake the test makes hostile."""
    with FakeOpenAI(api_key=KEY) as running:
        _connect(api, running)
        yield running


def _connect(client: httpx.Client, fake: FakeOpenAI) -> None:
    body = {
        "name": "big",
        "connection_type": "openai",
        "base_url": f"{fake.url}/v1",
        "model_name": "fake-model",
        "api_key": KEY,
        "max_retries": 0,
    }
    response = client.post("/api/connections", json=body)
    assert response.status_code == 201, response.text
    deadline = time.monotonic() + 5
    while not any(m["id"] == "big" for m in client.get("/v1/models").json()["data"]):
        assert time.monotonic() < deadline, "the gateway did not see the connection"
        time.sleep(0.02)


def _bad_response(response: httpx.Response) -> None:
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "bad_response")
    assert "UMP_MAX_UPSTREAM_BYTES" in error["message"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_gateway_endless_answer_is_a_502(api: httpx.Client, big: FakeOpenAI, stream: bool) -> None:
    """Before the first chunk (an endless first line in a stream): a status, not a 500."""
    big.behaviour = Behaviour.huge_body
    _bad_response(api.post("/v1/chat/completions", json={**CHAT, "stream": stream}))


def test_gateway_huge_event_after_the_first_chunk_ends_with_an_error_event(
    api: httpx.Client, big: FakeOpenAI
) -> None:
    big.behaviour = Behaviour.huge_event
    response = api.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 200
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert len(events) == 2, events  # the first chunk, then the error; no [DONE]
    error = orjson.loads(events[-1])["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "bad_response")
    assert "an event of the stream" in error["message"]


def test_gateway_passes_an_event_larger_than_aiohttp_lines(
    api: httpx.Client, big: FakeOpenAI
) -> None:
    """A 700 KB event (aiohttp's line reader stops at 512 KiB) is under our limit."""
    big.reply.text = "word " + "y" * 700_000
    response = api.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")
    text = "".join(
        orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in response.text.split("\n\n")
        if line.startswith("data: {") and orjson.loads(line[6:])["choices"]
    )
    assert text == big.reply.text


# -- memory ----------------------------------------------------------------------------------

ANSWER_BYTES = 200 * 1024 * 1024
RSS_SLACK_KB = 20 * 1024


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def lone_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, so nothing else moves its memory (the storage plays no part)."""
    (db,) = list(make_database("sqlite", tmp_path))
    running = start_server(db, tmp_path / "data", UMP_HEALTH_MONITOR="false")
    yield running
    running.stop()


def test_a_200_mb_answer_leaves_the_server_memory_where_it_was(lone_server: Server) -> None:
    with (
        FakeOpenAI(api_key=KEY) as fake,
        httpx.Client(base_url=lone_server.url, timeout=120) as client,
    ):
        _connect(client, fake)
        for stream in (False, True, False, True):  # warm up: ordinary calls
            assert client.post("/v1/chat/completions", json={**CHAT, "stream": stream}).is_success
        started = rss_kb(lone_server.process.pid)

        fake.behaviour, fake.body_bytes = Behaviour.long_answer, ANSWER_BYTES
        _bad_response(client.post("/v1/chat/completions", json=CHAT))
        after_plain = rss_kb(lone_server.process.pid)

        received = 0
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            assert r.status_code == 200
            for piece in r.iter_bytes():
                received += len(piece)
        assert received > ANSWER_BYTES  # it all went through
        after_stream = rss_kb(lone_server.process.pid)

    grown = {"plain": after_plain - started, "stream": after_stream - started}
    assert max(grown.values()) < RSS_SLACK_KB, f"RSS grew by {grown} KB from {started} KB"


async def test_a_test_probe_reads_no_more_than_the_limit(http: aiohttp.ClientSession) -> None:
    """A test keeps only the start of the answer for its preview, and stops an answer that
    runs past the limit (each of its events being small)."""
    with FakeOpenAI(api_key=KEY) as fake:
        fake.behaviour, fake.body_bytes = Behaviour.long_answer, 4 * LIMIT
        target = Target(
            "openai", f"{fake.url}/v1", "fake-model", SecretText(KEY), max_response_bytes=LIMIT
        )
        found = await probe(target, http, "hi", 5, None)
    assert found.error is not None
    assert found.error.kind is ErrorKind.bad_response
    assert f"passed {LIMIT} bytes" in found.error.message
