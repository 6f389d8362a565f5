"""The adapters' retry rules, through the in-package fake adapter and its injectable sleep: no
HTTP, no waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from ump_llm_connections.providers.base import BACKOFF_BASE_S, MAX_RETRY_AFTER_S
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.fake import Answer, FakeAdapter, StreamAnswer, scripted
from ump_llm_connections.providers.target import Target
from ump_llm_connections.providers.types import ChatRequest, ChatResponse, Message, StreamChunk

REQUEST = ChatRequest(messages=[Message(role="user", content="hi")])
OK = ChatResponse(text="hello", finish_reason="stop")


def _down() -> ProviderError:
    return ProviderError(ErrorKind.unreachable, "down")


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:  # held, never used: the fake sends nothing
        yield session


def _fake(
    http: aiohttp.ClientSession,
    answer: Answer,
    sleeps: Sleeps,
    *,
    retries: int = 2,
    stream_answer: StreamAnswer | None = None,
) -> FakeAdapter:
    target = Target("fake", "http://fake.invalid", "m", max_retries=retries)
    return FakeAdapter(target, http, answer=answer, stream_answer=stream_answer, sleep=sleeps)


async def test_answers_from_its_function(http: aiohttp.ClientSession) -> None:
    sleeps = Sleeps()
    fake = _fake(http, lambda request: ChatResponse(text=request.messages[0].content or ""), sleeps)
    assert (await fake.chat(REQUEST)).text == "hi"
    assert fake.requests == [REQUEST]
    assert sleeps.delays == []


async def test_retryable_failures_back_off_exponentially_with_jitter(
    http: aiohttp.ClientSession,
) -> None:
    sleeps = Sleeps()
    fake = _fake(http, scripted(_down(), _down(), OK), sleeps)
    assert await fake.chat(REQUEST) == OK
    assert len(fake.requests) == 3
    first, second = sleeps.delays
    assert BACKOFF_BASE_S / 2 <= first <= BACKOFF_BASE_S
    assert BACKOFF_BASE_S <= second <= 2 * BACKOFF_BASE_S


async def test_retries_stop_at_max_retries(http: aiohttp.ClientSession) -> None:
    sleeps = Sleeps()
    fake = _fake(http, scripted(_down(), _down()), sleeps, retries=1)
    with pytest.raises(ProviderError) as caught:
        await fake.chat(REQUEST)
    assert caught.value.kind is ErrorKind.unreachable
    assert (len(fake.requests), len(sleeps.delays)) == (2, 1)


@pytest.mark.parametrize("kind", [ErrorKind.auth, ErrorKind.not_found, ErrorKind.bad_request])
async def test_definite_failures_are_not_retried(
    http: aiohttp.ClientSession, kind: ErrorKind
) -> None:
    sleeps = Sleeps()
    fake = _fake(http, scripted(ProviderError(kind, "no")), sleeps)
    with pytest.raises(ProviderError):
        await fake.chat(REQUEST)
    assert (len(fake.requests), sleeps.delays) == (1, [])


async def test_retry_after_is_slept_as_given_unless_too_long(http: aiohttp.ClientSession) -> None:
    sleeps = Sleeps()
    limited = ProviderError(ErrorKind.rate_limited, "slow down", status=429, retry_after=3.0)
    fake = _fake(http, scripted(limited, OK), sleeps)
    assert await fake.chat(REQUEST) == OK
    assert sleeps.delays == [3.0]
    too_long = ProviderError(
        ErrorKind.rate_limited, "later", status=429, retry_after=MAX_RETRY_AFTER_S + 1
    )
    fake = _fake(http, scripted(too_long, OK), sleeps)
    with pytest.raises(ProviderError):  # handed to the caller instead of slept through
        await fake.chat(REQUEST)
    assert sleeps.delays == [3.0]


async def test_one_attempt_without_retry(http: aiohttp.ClientSession) -> None:
    sleeps = Sleeps()
    fake = _fake(http, scripted(_down(), OK), sleeps)
    with pytest.raises(ProviderError):
        await fake.chat(REQUEST, retry=False)
    assert len(fake.requests) == 1


async def test_a_stream_is_retried_only_before_its_first_chunk(
    http: aiohttp.ClientSession,
) -> None:
    attempts: list[int] = []

    def chunks(_: ChatRequest) -> Iterator[StreamChunk]:
        attempts.append(1)
        if len(attempts) == 1:
            raise _down()
        yield StreamChunk("he")
        if len(attempts) == 2:
            raise ProviderError(ErrorKind.bad_response, "cut")
        yield StreamChunk("llo", finish_reason="stop")

    sleeps = Sleeps()
    fake = _fake(http, scripted(), sleeps, stream_answer=chunks)
    received: list[str] = []

    async def read() -> None:
        async for chunk in fake.stream(REQUEST):
            received.append(chunk.text)

    with pytest.raises(ProviderError) as caught:
        await read()
    assert caught.value.kind is ErrorKind.bad_response  # cut after a chunk: not retried
    assert (received, len(attempts), len(sleeps.delays)) == (["he"], 2, 1)


async def test_without_a_stream_function_the_answer_is_one_chunk(
    http: aiohttp.ClientSession,
) -> None:
    fake = _fake(http, scripted(OK), Sleeps())
    chunks = [chunk async for chunk in fake.stream(REQUEST)]
    assert [(c.text, c.finish_reason) for c in chunks] == [("hello", "stop")]


async def test_lists_its_models(http: aiohttp.ClientSession) -> None:
    target = Target("fake", "http://fake.invalid", "m")
    fake = FakeAdapter(target, http, answer=scripted(), models=["a", "b"])
    assert await fake.list_models() == ["a", "b"]
