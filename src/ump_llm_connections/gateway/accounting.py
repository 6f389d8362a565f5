"""What each attempt through the gateway leaves behind: the circuit breaker, outlier and
latency trackers hear how it went; its cost counts against the connection's and the token's
monthly budget (``connection.budget_exceeded`` once over); the metrics and the usage row
record it. ``Gateway`` is an ``Accounting``: these are its fields."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from ump_llm_connections.events import EventBus
from ump_llm_connections.gateway.directory import Route
from ump_llm_connections.gateway.outliers import Outliers
from ump_llm_connections.gateway.router import Breaker, Latencies, Spend
from ump_llm_connections.gateway.usage import UsageEvent, UsageRecorder
from ump_llm_connections.metrics import Metrics
from ump_llm_connections.providers.errors import ProviderError
from ump_llm_connections.providers.types import Usage

if TYPE_CHECKING:
    from ump_llm_connections.gateway.core import Plan


class Accounting:
    recorder: UsageRecorder
    breaker: Breaker
    latencies: Latencies
    spend: Spend
    metrics: Metrics | None
    events: EventBus
    outliers: Outliers

    def _served(
        self,
        route: Route,
        plan: Plan,
        source: str,
        started: datetime,
        clock: float,
        ttft: float | None,
        usage: Usage,
    ) -> None:
        latency = (time.perf_counter() - clock) * 1000
        self.breaker.success(route.id)
        self.outliers.success(route.id)
        self.latencies.observe(route.id, ttft if ttft is not None else latency)
        self._record(route, plan, source, started, latency, ttft, usage, None)

    def _failed(
        self,
        route: Route,
        plan: Plan,
        source: str,
        started: datetime,
        clock: float,
        ttft: float | None,
        exc: ProviderError,
        *,
        kind: str | None = None,
    ) -> None:
        if exc.retryable:
            self.breaker.failure(route.id)
        if kind is None:  # a client that went away says nothing about the upstream
            self.outliers.failure(route.id, exc)
        latency = (time.perf_counter() - clock) * 1000
        self._record(route, plan, source, started, latency, ttft, Usage(), kind or exc.kind.value)

    def _record(
        self,
        route: Route,
        plan: Plan,
        source: str,
        started: datetime,
        latency: float,
        ttft: float | None,
        usage: Usage,
        error: str | None,
    ) -> None:
        cost = route.cost(usage)
        caller = plan.caller
        if caller.token_id is not None:
            self.spend.add(caller.token_id, cost, caller.monthly_budget)
        if self.spend.add(route.id, cost, route.monthly_budget):
            self.events.publish(
                "connection.budget_exceeded",
                {
                    "connection_id": str(route.id),
                    "name": route.name,
                    "connection_type": route.connection_type,
                    "budget": route.monthly_budget,
                    "spent": round(self.spend.spent[route.id], 6),
                    "month": self.spend.month,
                },
                (route.owner, route.team),
            )
        if self.metrics is not None:
            self.metrics.observe(
                route.name,
                route.connection_type,
                source,
                latency_ms=latency,
                ttft_ms=ttft,
                prompt_tokens=usage.input_tokens,
                completion_tokens=usage.output_tokens,
                error_kind=error,
            )
        self.recorder.record(
            UsageEvent(
                connection_id=route.id,
                created_at=started,
                source=source,
                prompt_tokens=usage.input_tokens,
                completion_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                latency_ms=round(latency, 3),
                ttft_ms=round(ttft, 3) if ttft is not None else None,
                success=error is None,
                error_kind=error,
                cost=cost,
                pool_id=plan.pool.id if plan.pool else None,
                token_id=caller.token_id,
            )
        )
