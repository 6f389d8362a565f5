"""The gateway's request path: resolve the connection, call its adapter, record the usage.

route (api/gateway.py) → Gateway.resolve → Gateway.complete | Gateway.stream
    → adapter → upstream, and each call back through the usage recorder.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import replace
from datetime import datetime

from ump_llm_connections.gateway.directory import Directory, Route
from ump_llm_connections.gateway.usage import UsageEvent, UsageRecorder
from ump_llm_connections.providers.base import (
    ChatRequest,
    ChatResponse,
    ProviderError,
    StreamChunk,
    Usage,
)
from ump_llm_connections.store.tables import utcnow

CLIENT_CLOSED = "client_closed"


class GatewayError(Exception):
    """A refusal in OpenAI's error terms: status, ``type``, ``code`` and ``param``."""

    def __init__(
        self, status: int, kind: str, code: str, message: str, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.code = code
        self.message = message
        self.param = param


class Gateway:
    def __init__(self, directory: Directory, recorder: UsageRecorder) -> None:
        self.directory = directory
        self.recorder = recorder

    def resolve(self, model: str, source: str) -> Route:
        """The connection ``model`` names, if this caller may use it."""
        route = self.directory.find(model)
        if route is None:
            raise GatewayError(
                404,
                "invalid_request_error",
                "model_not_found",
                f"no connection named '{model[:200]}': GET /v1/models lists them",
                "model",
            )
        if not route.is_active:
            raise GatewayError(
                403,
                "invalid_request_error",
                "connection_inactive",
                f"connection '{route.name}' is inactive: activate it with "
                f"POST /api/connections/{route.id}/activate",
                "model",
            )
        if not route.allows(source):
            raise GatewayError(
                403,
                "invalid_request_error",
                "integration_disabled",
                f"connection '{route.name}' is not enabled for {source}: set "
                f"use_in_{source} to true",
                "model",
            )
        return route

    async def complete(self, route: Route, request: ChatRequest, source: str) -> ChatResponse:
        started, clock = utcnow(), time.perf_counter()
        try:
            answer = await route.adapter.chat(_with_defaults(route, request))
        except ProviderError as exc:
            self._record(route, source, started, clock, None, Usage(), exc.kind.value)
            raise
        self._record(route, source, started, clock, None, answer.usage, None)
        return answer

    async def stream(
        self, route: Route, request: ChatRequest, source: str
    ) -> AsyncGenerator[StreamChunk, None]:
        started, clock = utcnow(), time.perf_counter()
        ttft: float | None = None
        usage = Usage()
        error: str | None = CLIENT_CLOSED  # until the stream ends one way or the other
        try:
            async for chunk in route.adapter.stream(_with_defaults(route, request)):
                if ttft is None and (chunk.text or chunk.tool_calls):
                    ttft = (time.perf_counter() - clock) * 1000
                if chunk.usage is not None:
                    usage = chunk.usage
                yield chunk
            error = None
        except ProviderError as exc:
            error = exc.kind.value
            raise
        finally:
            self._record(route, source, started, clock, ttft, usage, error)

    def _record(
        self,
        route: Route,
        source: str,
        started: datetime,
        clock: float,
        ttft: float | None,
        usage: Usage,
        error: str | None,
    ) -> None:
        self.recorder.record(
            UsageEvent(
                connection_id=route.id,
                created_at=started,
                source=source,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                latency_ms=round((time.perf_counter() - clock) * 1000, 3),
                ttft_ms=round(ttft, 3) if ttft is not None else None,
                success=error is None,
                error_kind=error,
                cost=route.cost(usage.prompt_tokens, usage.completion_tokens),
            )
        )


def _with_defaults(route: Route, request: ChatRequest) -> ChatRequest:
    """The connection's temperature and max_tokens where the caller set none."""
    if (request.temperature is None and route.temperature is not None) or (
        request.max_tokens is None and route.max_tokens is not None
    ):
        return replace(
            request,
            temperature=request.temperature
            if request.temperature is not None
            else route.temperature,
            max_tokens=request.max_tokens if request.max_tokens is not None else route.max_tokens,
        )
    return request
