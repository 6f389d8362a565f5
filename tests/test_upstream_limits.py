"""Bounded upstream reads, adapter by adapter: an answer, an error body, a model list and each
event of a stream are read up to a limit, and an upstream that sends more gets ``bad_response``
naming the limit and its setting, not a server that grows without end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import aiohttp
import pytest

from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import Behaviour, FakeUpstream
from tests.upstreams.google import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ChatRequest,
    ErrorKind,
    Message,
    ProviderError,
    Target,
    create_http_session,
)

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
            api_key=KEY,
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
