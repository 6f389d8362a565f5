"""Every adapter against its fake upstream over real HTTP: the same scenarios for each format."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

import aiohttp
import orjson
import pytest

from tests.conftest import free_port
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import Behaviour, FakeUpstream, ToolCall
from tests.upstreams.google import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.domain import SecretText
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.base import Adapter
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.target import Target, create_http_session
from ump_llm_connections.providers.types import ChatRequest, Message, StreamChunk, Tool
from ump_llm_connections.providers.types import ToolCall as SentToolCall

KEY = "sk-adapter-test-key-0123456789abcdef"


@dataclass
class Upstream:
    fake: FakeUpstream
    target: Target


FORMATS = {
    "openai": (FakeOpenAI, "/v1"),
    "anthropic": (FakeAnthropic, "/v1"),
    "google": (FakeGemini, "/v1beta"),
    "ollama": (FakeOllama, ""),
}

HELLO = ChatRequest(
    messages=[Message("user", "Hello, how are you?")], system="Be brief.", max_tokens=50
)
WEATHER = Tool(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}},
)


@pytest.fixture(params=list(FORMATS))
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    fake_class, path = FORMATS[str(request.param)]
    with fake_class(api_key=KEY) as fake:
        fake.delay = 0.3
        target = Target(
            api_format=request.param,
            base_url=fake.url + path,
            model="fake-model",
            api_key=SecretText(KEY),
            timeout=2,
            max_retries=0,
        )
        yield Upstream(fake, target)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = create_http_session()
    yield session
    await session.close()


class Sleeps:
    """An injected sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def adapter(up: Upstream, http: aiohttp.ClientSession, **changes: object) -> Adapter:
    return adapter_for(replace(up.target, **changes), http)  # type: ignore[arg-type]


async def collect(a: Adapter, request: ChatRequest) -> list[StreamChunk]:
    return [chunk async for chunk in a.stream(request)]


async def test_chat(upstream: Upstream, http: aiohttp.ClientSession) -> None:
    answer = await adapter(upstream, http).chat(HELLO)
    assert answer.text == upstream.fake.reply.text
    assert answer.finish_reason == "stop"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (12, 9)
    assert answer.tool_calls == []


async def test_stream(upstream: Upstream, http: aiohttp.ClientSession) -> None:
    chunks = await collect(adapter(upstream, http), HELLO)
    assert "".join(c.text for c in chunks) == upstream.fake.reply.text
    assert len([c for c in chunks if c.text]) > 1  # really streamed, not one block
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    usage = [c.usage for c in chunks if c.usage]
    assert usage
    assert (usage[-1].input_tokens, usage[-1].output_tokens) == (12, 9)


async def test_key_travels_in_a_header_never_in_the_url(
    upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    await adapter(upstream, http).chat(HELLO)
    await collect(adapter(upstream, http), HELLO)
    await adapter(upstream, http).list_models()
    for recorded in upstream.fake.requests:
        assert KEY not in recorded.path
        assert all(KEY not in v for v in recorded.query.values())
        assert any(KEY in v for v in recorded.headers.values())


async def test_tool_calls(upstream: Upstream, http: aiohttp.ClientSession) -> None:
    upstream.fake.reply.tool_call = ToolCall("get_weather", {"city": "Paris"})
    request = replace(HELLO, tools=[WEATHER], tool_choice="auto")
    answer = await adapter(upstream, http).chat(request)
    (call,) = answer.tool_calls
    assert call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    assert answer.finish_reason == "tool_calls"

    chunks = await collect(adapter(upstream, http), request)
    deltas = [d for c in chunks for d in c.tool_calls]
    assert {d.index for d in deltas} == {0}
    assert [d.name for d in deltas if d.name] == ["get_weather"]
    assert orjson.loads("".join(d.arguments for d in deltas)) == {"city": "Paris"}
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


async def test_tool_round_trip_is_accepted(upstream: Upstream, http: aiohttp.ClientSession) -> None:
    """A conversation carrying a call and its result is sent in the format's own shape."""
    call = SentToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    request = ChatRequest(
        messages=[
            Message("user", "Weather in Paris?"),
            Message("assistant", None, tool_calls=[call]),
            Message("tool", '{"temp_c": 21}', tool_call_id="call_1"),
        ],
        tools=[WEATHER],
    )
    answer = await adapter(upstream, http).chat(request)
    assert answer.text == upstream.fake.reply.text


@pytest.mark.parametrize("upstream", ["openai", "google", "ollama"], indirect=True)
async def test_missing_usage_is_null_not_invented(
    upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    """(Anthropic always reports usage.)"""
    upstream.fake.reply.report_usage = False
    answer = await adapter(upstream, http).chat(HELLO)
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (None, None)
    chunks = await collect(adapter(upstream, http), HELLO)
    assert all(c.usage is None or c.usage.output_tokens is None for c in chunks)


async def test_models(upstream: Upstream, http: aiohttp.ClientSession) -> None:
    listed = await adapter(upstream, http).list_models()
    # Ollama lists its default tag in full: fake-model:latest.
    assert [m.removesuffix(":latest") for m in listed] == upstream.fake.models


@pytest.mark.parametrize(
    ("behaviour", "kind", "status"),
    [
        (Behaviour.unauthorized, ErrorKind.auth, 401),
        (Behaviour.model_not_found, ErrorKind.not_found, 404),
        (Behaviour.rate_limited, ErrorKind.rate_limited, 429),
        (Behaviour.server_error, ErrorKind.server_error, 500),
    ],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
async def test_http_errors_are_classified(
    upstream: Upstream,
    http: aiohttp.ClientSession,
    behaviour: Behaviour,
    kind: ErrorKind,
    status: int,
    streaming: bool,
) -> None:
    upstream.fake.behaviour = behaviour
    a = adapter(upstream, http)
    with pytest.raises(ProviderError) as caught:
        await (collect(a, HELLO) if streaming else a.chat(HELLO))
    error = caught.value
    if kind is ErrorKind.auth and isinstance(upstream.fake, FakeGemini):
        status = 400  # Gemini says a key is bad with 400 API_KEY_INVALID: still auth
    assert (error.kind, error.status) == (kind, status)
    assert error.message.startswith(f"{status} from 127.0.0.1:{upstream.fake.port}")
    assert KEY not in error.message
    if kind is ErrorKind.rate_limited:
        assert error.retry_after == 1


async def test_auth_error_says_what_to_do(upstream: Upstream, http: aiohttp.ClientSession) -> None:
    with pytest.raises(ProviderError) as caught:
        await adapter(upstream, http, api_key=SecretText("sk-wrong-key-000000000000")).chat(HELLO)
    assert caught.value.kind is ErrorKind.auth
    assert "check the API key" in caught.value.message


async def test_unknown_model_is_not_found(upstream: Upstream, http: aiohttp.ClientSession) -> None:
    with pytest.raises(ProviderError) as caught:
        await adapter(upstream, http, model="no-such-model").chat(HELLO)
    assert caught.value.kind is ErrorKind.not_found
    assert "no-such-model" in caught.value.message


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
async def test_hang_times_out(
    upstream: Upstream, http: aiohttp.ClientSession, streaming: bool
) -> None:
    upstream.fake.behaviour = Behaviour.hang
    a = adapter(upstream, http, timeout=0.3)
    with pytest.raises(ProviderError) as caught:
        await (collect(a, HELLO) if streaming else a.chat(HELLO))
    assert caught.value.kind is ErrorKind.timeout
    assert "within 0.3 s" in caught.value.message


async def test_slow_first_token_is_waited_for(
    upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    upstream.fake.behaviour = Behaviour.slow_first_token
    chunks = await collect(adapter(upstream, http), HELLO)
    assert "".join(c.text for c in chunks) == upstream.fake.reply.text


async def test_connection_refused_is_unreachable(
    upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderError) as caught:
        await adapter(upstream, http, base_url=closed).chat(HELLO)
    assert caught.value.kind is ErrorKind.unreachable
    assert "is the server running" in caught.value.message


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
async def test_malformed_answer_is_bad_response(
    upstream: Upstream, http: aiohttp.ClientSession, streaming: bool
) -> None:
    upstream.fake.behaviour = Behaviour.malformed
    a = adapter(upstream, http)
    with pytest.raises(ProviderError) as caught:
        await (collect(a, HELLO) if streaming else a.chat(HELLO))
    assert caught.value.kind is ErrorKind.bad_response
    assert "invalid JSON" in caught.value.message


async def test_cut_stream_is_bad_response_after_partial_text(
    upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    upstream.fake.behaviour = Behaviour.cut_stream
    received: list[str] = []

    async def read() -> None:
        async for chunk in adapter(upstream, http).stream(HELLO):
            received.append(chunk.text)

    with pytest.raises(ProviderError) as caught:
        await read()
    assert caught.value.kind is ErrorKind.bad_response
    assert received  # part of the answer arrived before the cut
    assert "".join(received) != upstream.fake.reply.text


async def test_retries_honour_retry_after(upstream: Upstream, http: aiohttp.ClientSession) -> None:
    upstream.fake.script = [Behaviour.rate_limited, Behaviour.server_error]
    sleeps = Sleeps()
    a = adapter_for(replace(upstream.target, max_retries=2), http)
    a._sleep = sleeps
    answer = await a.chat(HELLO)
    assert answer.text == upstream.fake.reply.text
    assert sleeps.calls[0] == 1.0  # the 429's Retry-After
    assert 0 < sleeps.calls[1] <= 0.5  # backoff with jitter after the 500
    assert len(upstream.fake.requests) == 3


async def test_stream_retries_before_the_first_chunk(
    upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    upstream.fake.script = [Behaviour.server_error]
    a = adapter_for(replace(upstream.target, max_retries=1), http)
    a._sleep = Sleeps()
    chunks = await collect(a, HELLO)
    assert "".join(c.text for c in chunks) == upstream.fake.reply.text


async def test_no_retry_past_max_retries_or_for_definite_errors(
    upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    upstream.fake.behaviour = Behaviour.server_error
    a = adapter_for(replace(upstream.target, max_retries=2), http)
    a._sleep = Sleeps()
    with pytest.raises(ProviderError):
        await a.chat(HELLO)
    assert len(upstream.fake.requests) == 3
    upstream.fake.requests.clear()
    upstream.fake.behaviour = Behaviour.unauthorized
    with pytest.raises(ProviderError):
        await a.chat(HELLO)
    assert len(upstream.fake.requests) == 1
