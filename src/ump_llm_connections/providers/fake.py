"""An adapter that answers from a function instead of an upstream: for fast tests of what sits
above the adapters (retries, routing, limits, the wire format), like pydantic-ai's
``FunctionModel``.

Only the HTTP exchange is replaced: the base's retry rules (``max_retries``, backoff with jitter,
Retry-After, a stream retried only before its first chunk) and its injectable ``sleep`` are
kept, so a test can watch the delays without waiting for them. ``answer`` gets each attempt's
request and returns the answer or raises a ``ProviderError``; ``scripted`` makes one from a list.
It is not registered in ``ADAPTERS``: no connection can point at it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, ClassVar

import aiohttp

from ump_llm_connections.providers.base import Adapter
from ump_llm_connections.providers.errors import ProviderError
from ump_llm_connections.providers.target import HttpCall, Target
from ump_llm_connections.providers.types import ChatRequest, ChatResponse, StreamChunk

__all__ = ["Answer", "FakeAdapter", "StreamAnswer", "scripted"]

Answer = Callable[[ChatRequest], ChatResponse]
StreamAnswer = Callable[[ChatRequest], Iterable[StreamChunk]]
CHAT, MODELS = "fake:chat", "fake:models"


def scripted(*outcomes: ChatResponse | ProviderError) -> Answer:
    """An answer that gives ``outcomes`` one attempt at a time (raising the errors), then fails
    the test with ``IndexError`` if asked once more than scripted."""
    left = list(outcomes)

    def answer(_: ChatRequest) -> ChatResponse:
        outcome = left.pop(0)
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    return answer


class FakeAdapter(Adapter):
    api_format: ClassVar[str] = "fake"

    def __init__(
        self,
        target: Target,
        http: aiohttp.ClientSession,
        *,
        answer: Answer,
        stream_answer: StreamAnswer | None = None,
        models: Iterable[str] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(target, http, sleep=sleep)
        self._answer = answer
        self._stream_answer = stream_answer
        self._models = list(models)
        self.requests: list[ChatRequest] = []  # every attempt, retries included

    def chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        return HttpCall("POST", CHAT, {}, request)

    def parse_response(self, body: Any) -> ChatResponse:
        if not isinstance(body, ChatResponse):
            raise TypeError(f"the fake's answer must be a ChatResponse, not {type(body)}")
        return body

    def models_call(self) -> HttpCall:
        return HttpCall("GET", MODELS, {})

    def parse_models(self, body: Any) -> list[str]:
        return list(body)

    def parse_stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[StreamChunk]:
        raise TypeError("the fake adapter has no HTTP response to read: it streams in stream()")

    async def _fetch(self, call: HttpCall, parse: Callable[[Any], Any]) -> Any:
        if call.url == MODELS:
            return parse(self._models)
        self.requests.append(call.body)
        return parse(self._answer(call.body))

    async def stream(
        self, request: ChatRequest, *, retry: bool = True
    ) -> AsyncGenerator[StreamChunk, None]:
        """``stream_answer``'s chunks (or the answer as one chunk); an error raised before the
        first chunk is retried as the base retries a stream that could not be opened."""
        attempt = 0
        while True:
            self.requests.append(request)
            try:
                chunks = iter(self._chunks(request))
                first = next(chunks, None)
            except ProviderError as exc:
                if not retry or not await self._should_retry(exc, attempt):
                    raise
                attempt += 1
                continue
            break
        if first is not None:
            yield first
        for chunk in chunks:
            yield chunk

    def _chunks(self, request: ChatRequest) -> Iterable[StreamChunk]:
        if self._stream_answer is not None:
            return self._stream_answer(request)
        answer = self._answer(request)
        return [StreamChunk(answer.text, finish_reason=answer.finish_reason, usage=answer.usage)]
