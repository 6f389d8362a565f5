"""Testing connections: send a prompt through the connection's adapter, time it, record it.

The guide's "Test" button, ``ump-llm connections test`` and (later) the periodic monitor all run
``ConnectionTester.test``. A test streams, so it measures time to first token as well as total
latency; the outcome becomes a row in ``llm_connection_health_checks`` and the connection's
status (``active`` or ``error``), ``last_error``, ``consecutive_failures`` and ``last_tested_at``.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from ump_llm_connections.domain import (
    ConnectionStatus,
    HealthCheckPage,
    HealthCheckRead,
    TestRequest,
    TestResult,
    TokenCounts,
    UnsavedTestRequest,
)
from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.base import (
    ChatRequest,
    ErrorKind,
    Message,
    ProviderError,
    Target,
    Usage,
)
from ump_llm_connections.registry import Registry, unsaved_target
from ump_llm_connections.store.health import HealthStore
from ump_llm_connections.store.tables import HealthCheckRow, utcnow

log = logging.getLogger(__name__)

PREVIEW_CHARS = 200
MAX_HISTORY_PAGE = 500


@dataclass
class Probe:
    """What one test prompt found."""

    started: datetime
    latency_ms: float
    ttft_ms: float | None = None
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    error: ProviderError | None = None

    def result(self, status: ConnectionStatus | None) -> TestResult:
        preview = self.text[:PREVIEW_CHARS] if self.error is None else None
        return TestResult(
            success=self.error is None,
            status=status,
            latency_ms=round(self.latency_ms, 2),
            ttft_ms=round(self.ttft_ms, 2) if self.ttft_ms is not None else None,
            tokens=TokenCounts(
                prompt=self.usage.prompt_tokens, completion=self.usage.completion_tokens
            ),
            response_preview=preview,
            error_kind=self.error.kind.value if self.error else None,
            error=self.error.message if self.error else None,
            http_status=self.error.status if self.error else None,
            tested_at=self.started,
        )


async def probe(
    target: Target,
    http: aiohttp.ClientSession,
    prompt: str,
    max_tokens: int,
    temperature: float | None,
) -> Probe:
    request = ChatRequest(
        messages=[Message("user", prompt)], max_tokens=max_tokens, temperature=temperature
    )
    found = Probe(started=utcnow(), latency_ms=0.0)
    parts: list[str] = []
    start = time.perf_counter()
    try:
        async for chunk in adapter_for(target, http).stream(request):
            if found.ttft_ms is None and (chunk.text or chunk.tool_calls):
                found.ttft_ms = (time.perf_counter() - start) * 1000
            parts.append(chunk.text)
            if chunk.usage is not None:
                found.usage = chunk.usage
    except ProviderError as exc:
        found.error = exc
    found.latency_ms = (time.perf_counter() - start) * 1000
    found.text = "".join(parts)
    return found


class ConnectionTester:
    def __init__(self, registry: Registry, health: HealthStore, http: aiohttp.ClientSession):
        self._registry = registry
        self._health = health
        self._http = http

    async def test(self, ref: str, request: TestRequest, *, kind: str = "manual") -> TestResult:
        connection, target = await self._registry.target(ref)
        started = utcnow()
        await self._health.mark_testing(connection.id)
        found: Probe | None = None
        try:
            found = await probe(
                target, self._http, request.prompt, request.max_tokens, connection.temperature
            )
            return found.result(await self._record(connection.id, kind, found))
        finally:
            if found is None:  # cancelled or failed inside: "testing" must not stick
                await self._record(connection.id, kind, _interrupted(started))

    async def _record(
        self, connection_id: uuid.UUID, kind: str, found: Probe
    ) -> ConnectionStatus | None:
        row = await self._health.record(_check_row(connection_id, kind, found))
        return ConnectionStatus(row.status) if row is not None else None

    async def forget_unfinished(self) -> None:
        """At start-up: no test is running yet, so none can still be "testing"."""
        stale = await self._health.forget_unfinished()
        if stale:
            log.warning("%d connection(s) were left 'testing' by a stop; now 'unknown'", stale)

    async def test_unsaved(self, request: UnsavedTestRequest) -> TestResult:
        data = request.connection
        found = await probe(
            unsaved_target(data), self._http, request.prompt, request.max_tokens, data.temperature
        )
        return found.result(None)

    async def models(self, ref: str) -> list[str]:
        _, target = await self._registry.target(ref)
        return await adapter_for(target, self._http).list_models()

    async def history(self, ref: str, *, limit: int, offset: int) -> HealthCheckPage:
        if not 1 <= limit <= MAX_HISTORY_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_HISTORY_PAGE}", field="limit")
        if offset < 0:
            raise InvalidInput("offset must be 0 or more", field="offset")
        connection = await self._registry.get(ref)
        rows, total = await self._health.history(connection.id, limit=limit, offset=offset)
        items = [HealthCheckRead.model_validate(r) for r in rows]
        return HealthCheckPage(items=items, total=total, limit=limit, offset=offset)


def _interrupted(started: datetime) -> Probe:
    return Probe(
        started=started,
        latency_ms=0.0,
        error=ProviderError(ErrorKind.bad_response, "the test was interrupted"),
    )


def _check_row(connection_id: uuid.UUID, kind: str, found: Probe) -> HealthCheckRow:
    error = found.error
    return HealthCheckRow(
        connection_id=connection_id,
        created_at=found.started,
        kind=kind,
        success=error is None,
        latency_ms=round(found.latency_ms, 2),
        ttft_ms=round(found.ttft_ms, 2) if found.ttft_ms is not None else None,
        http_status=error.status if error else None,
        error_kind=error.kind.value if error else None,
        error=error.message if error else None,
        response_preview=found.text[:PREVIEW_CHARS] if error is None else None,
    )
