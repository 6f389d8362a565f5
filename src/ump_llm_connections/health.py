"""Testing connections: send a prompt through the connection's adapter, time it, record it.

The guide's "Test" button, ``ump-llm connections test`` and (later) the periodic monitor all run
``ConnectionTester.test``. A test streams, so it measures time to first token as well as total
latency; the outcome becomes a row in ``llm_connection_health_checks`` and the connection's
status (``active`` or ``error``), ``last_error``, ``consecutive_failures`` and ``last_tested_at``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import (
    PROBE_ERROR,
    ConnectionDetail,
    ConnectionRead,
    ConnectionStatus,
    EditModelsRequest,
    EditTestRequest,
    HealthCheckPage,
    HealthCheckRead,
    HealthSummary,
    HealthWindow,
    TestRequest,
    TestResult,
    TokenCounts,
    UnsavedModelsRequest,
    UnsavedTestRequest,
)
from ump_llm_connections.domain.access import OPEN_ACCESS, Principal
from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.events import EventBus
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.collect import Collector
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.redact import redact
from ump_llm_connections.providers.target import Target
from ump_llm_connections.providers.types import ChatRequest, Message, Usage
from ump_llm_connections.registry import Registry
from ump_llm_connections.stats import percentile
from ump_llm_connections.store.health import CheckPoint, HealthStore
from ump_llm_connections.store.tables import HealthCheckRow

log = logging.getLogger(__name__)

PREVIEW_CHARS = 200
PREVIEW_SCAN_CHARS = 4096  # of an answer kept to build the preview from (redacted, then cut)
MAX_HISTORY_PAGE = 500


@dataclass
class Probe:
    """What one test prompt found."""

    started: datetime
    latency_ms: float
    ttft_ms: float | None = None
    text: str = ""  # the start of the answer, redacted
    usage: Usage = field(default_factory=Usage)
    error: ProviderError | None = None
    unbuildable: bool = False  # no request was sent: our configuration, not the upstream

    def result(self, status: ConnectionStatus | None) -> TestResult:
        preview = self.text[:PREVIEW_CHARS] if self.error is None else None
        return TestResult(
            success=self.error is None,
            status=status,
            latency_ms=round(self.latency_ms, 2),
            ttft_ms=round(self.ttft_ms, 2) if self.ttft_ms is not None else None,
            tokens=TokenCounts(prompt=self.usage.input_tokens, completion=self.usage.output_tokens),
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
    adapter = adapter_for(target, http)
    collected = Collector(keep_chars=PREVIEW_SCAN_CHARS)
    try:
        async with contextlib.aclosing(adapter.stream(request)) as chunks:
            async for chunk in chunks:
                collected.add(chunk)
                if collected.chars > target.max_response_bytes:  # no more than the gateway reads
                    raise adapter.too_large("the answer")
    except ProviderError as exc:
        found.error = exc
    found.latency_ms = collected.elapsed_ms()
    found.ttft_ms = collected.ttft_ms
    found.usage = collected.usage
    found.text = redact(collected.response().text, target.secrets())
    return found


async def cheap_probe(target: Target, http: aiohttp.ClientSession) -> Probe:
    """List the models: proves the endpoint and the key work, spends no tokens."""
    found = Probe(started=utcnow(), latency_ms=0.0)
    start = time.perf_counter()
    try:
        models = await adapter_for(target, http).list_models()
        found.text = f"{len(models)} models listed"
    except ProviderError as exc:
        found.error = exc
    found.latency_ms = (time.perf_counter() - start) * 1000
    return found


@dataclass
class Thresholds:
    """When a connection's health raises ``connection.threshold_exceeded`` (None: never)."""

    failures: int = 3
    latency_ms: float | None = None
    error_rate: float | None = None


class ConnectionTester:
    def __init__(
        self,
        registry: Registry,
        health: HealthStore,
        http: aiohttp.ClientSession,
        events: EventBus,
        thresholds: Thresholds | None = None,
    ) -> None:
        self._registry = registry
        self._health = health
        self._http = http
        self._events = events
        self.thresholds = thresholds or Thresholds()
        self._over: set[tuple[uuid.UUID, str]] = set()  # thresholds currently exceeded

    async def test(
        self,
        ref: str,
        request: TestRequest,
        *,
        kind: str = "manual",
        caller: Principal = OPEN_ACCESS,
    ) -> TestResult:
        if isinstance(request, EditTestRequest) and request.changes is not None:
            edited, target = await self._registry.edited_target(ref, request.changes, caller=caller)
            tried = await probe(
                target, self._http, request.prompt, request.max_tokens, edited.temperature
            )
            return tried.result(None)  # an edit not saved: its test is not recorded either
        connection, target = await self._registry.target(ref, caller=caller)
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
        return await self.apply(connection_id, kind, found, enforce=False)

    async def apply(
        self, connection_id: uuid.UUID, kind: str, found: Probe, *, enforce: bool
    ) -> ConnectionStatus | None:
        """Record a check, move the connection's state, and say so in events."""
        check = _check_row(connection_id, kind, found)
        outcome = await self._health.record(
            check, threshold=self.thresholds.failures, enforce=enforce
        )
        if outcome is None:
            return None
        row = outcome.row
        data = {
            "connection_id": str(row.id),
            "name": row.name,
            "connection_type": row.connection_type,
            "is_active": row.is_active,
            "status": row.status,
        }
        scope = (row.owner, row.team)
        if found.error is not None:
            self._events.publish(
                "connection.test_failed",
                {
                    **data,
                    "kind": kind,
                    "error_kind": check.error_kind,
                    "error": check.error,
                    "consecutive_failures": row.consecutive_failures,
                },
                scope,
            )
        if row.status != outcome.old_status:
            self._events.publish(
                "connection.status_changed", {**data, "old_status": outcome.old_status}, scope
            )
        if outcome.deactivated or outcome.reactivated:
            verb = "deactivated" if outcome.deactivated else "activated"
            log.warning(
                "connection %r %s by the health monitor (%s)",
                row.name,
                verb,
                row.last_error or "healthy again",
            )
            self._events.publish(
                f"connection.{verb}",
                {**data, "reason": "health", "last_error": row.last_error},
                scope,
            )
        if outcome.deactivated or outcome.reactivated or row.status != outcome.old_status:
            await self._registry.notify(row.id)  # the gateway sees the change at once
        await self._check_thresholds(row.id, data, found, kind, scope)
        return ConnectionStatus(row.status)

    async def _check_thresholds(
        self,
        connection_id: uuid.UUID,
        data: dict[str, Any],
        found: Probe,
        kind: str,
        scope: tuple[str | None, str | None],
    ) -> None:
        """Raise ``threshold_exceeded`` when latency or the last hour's error rate crosses
        its threshold (once per crossing, not on every check)."""
        limits = self.thresholds
        measured: dict[str, tuple[float, float]] = {}
        if limits.latency_ms is not None and found.error is None:
            measured["latency_ms"] = (found.latency_ms, limits.latency_ms)
        if limits.error_rate is not None:
            checks = await self._health.since(connection_id, utcnow() - timedelta(hours=1))
            if checks:
                rate = sum(1 for c in checks if not c.success) / len(checks)
                measured["error_rate"] = (rate, limits.error_rate)
        for metric, (value, limit) in measured.items():
            key = (connection_id, metric)
            if value > limit and key not in self._over:
                self._over.add(key)
                self._events.publish(
                    "connection.threshold_exceeded",
                    {
                        **data,
                        "metric": metric,
                        "value": round(value, 4),
                        "threshold": limit,
                        "kind": kind,
                    },
                    scope,
                )
            elif value <= limit:
                self._over.discard(key)

    async def health(self, ref: str, *, caller: Principal = OPEN_ACCESS) -> HealthSummary:
        now = utcnow()
        start = now - timedelta(days=1)
        connection, checks = await self._registry.get_with_checks(ref, start, caller=caller)
        return _summary(connection, checks, now)

    async def detail(self, ref: str, *, caller: Principal = OPEN_ACCESS) -> ConnectionDetail:
        """A connection with its health, read together."""
        now = utcnow()
        start = now - timedelta(days=1)
        connection, checks = await self._registry.get_with_checks(ref, start, caller=caller)
        return ConnectionDetail(**connection.model_dump(), health=_summary(connection, checks, now))

    async def forget_unfinished(self) -> None:
        """At start-up: no test is running yet, so none can still be "testing"."""
        stale = await self._health.forget_unfinished()
        if stale:
            log.warning("%d connection(s) were left 'testing' by a stop; now 'unknown'", stale)

    async def test_unsaved(
        self, request: UnsavedTestRequest, *, caller: Principal = OPEN_ACCESS
    ) -> TestResult:
        data = request.connection
        found = await probe(
            self._registry.unsaved_target(data, caller),
            self._http,
            request.prompt,
            request.max_tokens,
            data.temperature,
        )
        return found.result(None)

    async def models(self, ref: str, *, caller: Principal = OPEN_ACCESS) -> list[str]:
        _, target = await self._registry.target(ref, caller=caller)
        return await adapter_for(target, self._http).list_models()

    async def models_edited(
        self, ref: str, request: EditModelsRequest, *, caller: Principal = OPEN_ACCESS
    ) -> list[str]:
        _, target = await self._registry.edited_target(ref, request.changes, caller=caller)
        return await adapter_for(target, self._http).list_models()

    async def models_unsaved(
        self, request: UnsavedModelsRequest, *, caller: Principal = OPEN_ACCESS
    ) -> list[str]:
        target = self._registry.unsaved_target(request.connection, caller)
        return await adapter_for(target, self._http).list_models()

    async def history(
        self, ref: str, *, limit: int, offset: int, caller: Principal = OPEN_ACCESS
    ) -> HealthCheckPage:
        if not 1 <= limit <= MAX_HISTORY_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_HISTORY_PAGE}", field="limit")
        if offset < 0:
            raise InvalidInput("offset must be 0 or more", field="offset")
        connection = await self._registry.get(ref, caller=caller)
        rows, total = await self._health.history(connection.id, limit=limit, offset=offset)
        items = [HealthCheckRead.model_validate(r) for r in rows]
        return HealthCheckPage(items=items, total=total, limit=limit, offset=offset)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _summary(connection: ConnectionRead, checks: list[CheckPoint], now: datetime) -> HealthSummary:
    """A connection's health from its row and its last day of checks."""
    hour = [c for c in checks if _utc(c.created_at) >= now - timedelta(hours=1)]
    return HealthSummary(
        connection_id=connection.id,
        status=connection.status,
        is_active=connection.is_active,
        deactivated_by_health=connection.deactivated_by_health,
        consecutive_failures=connection.consecutive_failures,
        last_error=connection.last_error,
        last_tested_at=connection.last_tested_at,
        last_hour=_window(hour),
        last_day=_window(checks),
    )


def _window(checks: list[CheckPoint]) -> HealthWindow:
    latencies = [c.latency_ms for c in checks if c.success and c.latency_ms is not None]
    ok = sum(1 for c in checks if c.success)
    return HealthWindow(
        checks=len(checks),
        success_rate=round(ok / len(checks), 4) if checks else None,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
    )


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
        error_kind=(PROBE_ERROR if found.unbuildable else error.kind.value) if error else None,
        error=error.message if error else None,
        response_preview=found.text[:PREVIEW_CHARS] if error is None else None,
    )
