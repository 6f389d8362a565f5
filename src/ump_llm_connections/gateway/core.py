"""The gateway's request path: plan which connections may serve, try them in order, record.

    route (api/gateway.py) → Gateway.plan → Gateway.complete | Gateway.open_stream
        → (limits) → adapter → upstream, and each attempt back through the usage recorder.

A connection name plans one connection; a pool name plans its members in the order of its
strategy. A retryable failure (timeout, unreachable, 429, 5xx) or a full rate limit moves on to
the next; a stream fails over only before its first chunk reached the caller. Within a pool, a
connection's own retries are kept for the last candidate: the next member is a faster retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace

from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain.access import OPEN_ACCESS, Principal
from ump_llm_connections.events import EventBus
from ump_llm_connections.gateway.accounting import Accounting
from ump_llm_connections.gateway.directory import Directory, Route
from ump_llm_connections.gateway.limits import Limiter, LimiterUnavailable, Reservation
from ump_llm_connections.gateway.outliers import Outliers
from ump_llm_connections.gateway.router import Breaker, Latencies, PoolRoute, Spend, order
from ump_llm_connections.gateway.usage import UsageRecorder
from ump_llm_connections.metrics import Metrics
from ump_llm_connections.providers.collect import Collector
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.types import ChatRequest, ChatResponse, StreamChunk, Usage

log = logging.getLogger(__name__)

CLIENT_CLOSED = "client_closed"  # also the cancel message of a stream whose client left
SERVER_SHUTDOWN = "server_shutdown"  # a stream the stopping server ended
DEFAULT_OUTPUT_ESTIMATE = 256  # tokens reserved for the answer when no max_tokens is set


class GatewayError(Exception):
    """A refusal in OpenAI's error terms: status, ``type``, ``code`` and ``param``."""

    def __init__(
        self,
        status: int,
        kind: str,
        code: str,
        message: str,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Plan:
    """The connections to try, in order, the pool they came from (if any), and the caller."""

    routes: list[Route]
    pool: PoolRoute | None = None
    caller: Principal = OPEN_ACCESS


@dataclass(frozen=True, slots=True)
class Stream:
    """A stream that has started: the connection serving it, its first chunk (None when it
    ended at once), the rest, and the collector that has seen every chunk so far (usage, time
    to first token)."""

    route: Route
    first: StreamChunk | None
    rest: AsyncGenerator[StreamChunk, None]
    collected: Collector


@dataclass
class Gateway(Accounting):
    directory: Directory
    recorder: UsageRecorder
    limiter: Limiter
    breaker: Breaker = field(default_factory=Breaker)
    latencies: Latencies = field(default_factory=Latencies)
    spend: Spend = field(default_factory=Spend)
    rng: random.Random = field(default_factory=random.Random)
    metrics: Metrics | None = None
    events: EventBus = field(default_factory=EventBus)
    outliers: Outliers = field(default_factory=Outliers)

    def plan(
        self, model: str, source: str, key: str | None = None, caller: Principal = OPEN_ACCESS
    ) -> Plan:
        """Which connections may serve ``model`` for this caller, best first. A member's token
        sees only its own and its team's connections and pools: the others do not exist."""
        pool = self.directory.find_pool(model)
        everything = caller.scope is None
        if pool is not None and not (everything or caller.can_see(pool.owner, pool.team)):
            pool = None
        if pool is None:
            return Plan([self._single(model, source, caller)], None, caller)
        usable: list[Route] = []
        broken: list[Route] = []
        for member in order(pool, key=key, latencies=self.latencies, rng=self.rng):
            route = self.directory.get(member.connection_id)
            if route is None or not route.is_active or not route.allows(source):
                continue
            if not (everything or caller.can_see(route.owner, route.team)):
                continue
            if self.spend.over(route.id, route.monthly_budget, route.name):
                continue
            (usable if self.breaker.available(route.id) else broken).append(route)
        if not usable and not broken:
            raise GatewayError(
                503,
                "service_unavailable",
                "no_available_connection",
                f"no member of pool '{pool.name}' can serve a {source} call: all are "
                f"inactive, not enabled for {source} or over budget",
                "model",
            )
        return Plan(usable + broken, pool, caller)  # circuits still open: only as a last resort

    def _single(self, model: str, source: str, caller: Principal) -> Route:
        route = self.directory.find(model)
        if route is None or not (caller.scope is None or caller.can_see(route.owner, route.team)):
            raise GatewayError(
                404,
                "invalid_request_error",
                "model_not_found",
                f"no connection or pool named '{model[:200]}': GET /v1/models lists them",
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
        if self.spend.over(route.id, route.monthly_budget, route.name):
            raise GatewayError(
                429,
                "insufficient_quota",
                "budget_exceeded",
                f"connection '{route.name}' is over its monthly budget",
                "model",
            )
        return route

    async def admit(self, caller: Principal) -> None:
        """A token's own limits, before any connection's: its monthly budget and its requests
        per minute (shared by every replica when the limiter is Redis)."""
        if caller.token_id is None:
            return
        budget = caller.monthly_budget
        if budget is not None and self.spend.over(caller.token_id, budget, caller.name):
            raise GatewayError(
                429,
                "insufficient_quota",
                "budget_exceeded",
                f"token '{caller.name}' is over its monthly budget of {budget:g}",
            )
        if caller.rpm_limit is None:
            return
        try:
            taken = await self.limiter.reserve(
                caller.token_id, rpm=caller.rpm_limit, tpm=None, tokens=0
            )
        except LimiterUnavailable as exc:  # as for connections: admit, and say so
            log.warning("token rate limits not enforced: %s", exc)
            return
        if isinstance(taken, float):
            raise GatewayError(
                429,
                "rate_limit_error",
                "rate_limit_exceeded",
                f"token '{caller.name}' is over its limit of {caller.rpm_limit} requests per "
                f"minute: retry in {max(1, round(taken))} s",
                retry_after=taken,
            )

    async def complete(
        self, plan: Plan, request: ChatRequest, source: str
    ) -> tuple[ChatResponse, Route]:
        await self.admit(plan.caller)
        async for route, reservation, last in self._admitted(plan, request):
            started, clock = utcnow(), time.perf_counter()
            try:
                answer = await route.adapter.chat(_with_defaults(route, request), retry=last)
            except ProviderError as exc:
                await self._settle(reservation, None)
                self._failed(route, plan, source, started, clock, None, exc)
                if exc.retryable and not last:
                    continue
                raise
            await self._settle(reservation, answer.usage)
            self._served(route, plan, source, started, clock, None, answer.usage)
            return answer, route
        raise AssertionError("unreachable: _admitted raises when it runs out")

    async def open_stream(self, plan: Plan, request: ChatRequest, source: str) -> Stream:
        """Start a stream on the first connection that answers; it fails over only until
        the first chunk, which is returned with the rest of the stream."""
        await self.admit(plan.caller)
        async for route, reservation, last in self._admitted(plan, request):
            collected = Collector(keep_chars=0)  # the chunks go on to the caller as they come
            chunks = self._stream(route, plan, request, source, reservation, collected, retry=last)
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                return Stream(route, None, chunks, collected)
            except ProviderError as exc:
                if exc.retryable and not last:
                    continue
                raise
            return Stream(route, first, chunks, collected)
        raise AssertionError("unreachable: _admitted raises when it runs out")

    async def _admitted(
        self, plan: Plan, request: ChatRequest
    ) -> AsyncGenerator[tuple[Route, Reservation | None, bool], None]:
        """The plan's connections the rate limits admit, in order, each with its reservation
        and whether it is the last one. When the caller moves past them all, the answer is a
        429 naming the soonest moment one of them frees up."""
        limited: float | None = None
        for index, route in enumerate(plan.routes):
            reservation = await self._reserve(route, request)
            if isinstance(reservation, float):
                limited = reservation if limited is None else min(limited, reservation)
                continue
            yield route, reservation, index == len(plan.routes) - 1
        raise _rate_limited(plan, limited)

    async def _stream(
        self,
        route: Route,
        plan: Plan,
        request: ChatRequest,
        source: str,
        reservation: Reservation | None,
        collected: Collector,
        *,
        retry: bool,
    ) -> AsyncGenerator[StreamChunk, None]:
        started = utcnow()
        failure: ProviderError | None = None
        ended = CLIENT_CLOSED  # unless cancelled by the server stopping
        done = False
        try:
            async for chunk in route.adapter.stream(_with_defaults(route, request), retry=retry):
                collected.add(chunk)
                yield chunk
            done = True
        except ProviderError as exc:
            failure = exc
            raise
        except asyncio.CancelledError as exc:
            if exc.args != (CLIENT_CLOSED,):
                ended = SERVER_SHUTDOWN
            raise
        finally:
            await self._settle(reservation, collected.usage)
            clock, ttft = collected.started, collected.ttft_ms
            if done:
                self._served(route, plan, source, started, clock, ttft, collected.usage)
            else:
                closed = failure or ProviderError(ErrorKind.bad_response, ended)
                self._failed(
                    route,
                    plan,
                    source,
                    started,
                    clock,
                    ttft,
                    closed,
                    kind=None if failure else ended,
                )

    async def _reserve(self, route: Route, request: ChatRequest) -> Reservation | float | None:
        if route.rpm_limit is None and route.tpm_limit is None:
            return None
        try:
            return await self.limiter.reserve(
                route.id, rpm=route.rpm_limit, tpm=route.tpm_limit, tokens=_estimate(request)
            )
        except LimiterUnavailable as exc:  # availability over strictness: admit, and say so
            log.warning("rate limits not enforced: %s", exc)
            return None

    async def _settle(self, reservation: Reservation | None, usage: Usage | None) -> None:
        if reservation is None:
            return
        used = None
        if usage is not None and usage.input_tokens is not None:
            used = usage.total_tokens
        try:
            await self.limiter.settle(reservation, used if usage is not None else 0)
        except LimiterUnavailable as exc:
            log.warning("could not settle a rate-limit reservation: %s", exc)


def _rate_limited(plan: Plan, retry_after: float | None) -> GatewayError:
    names = ", ".join(r.name for r in plan.routes)
    return GatewayError(
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        f"over the rate limit of {names}: retry in {retry_after or 1:.0f} s",
        "model",
        retry_after=retry_after,
    )


def _estimate(request: ChatRequest) -> int:
    """Tokens to reserve before the call: about 4 characters a token, plus the answer."""
    chars = sum(len(m.content or "") for m in request.messages) + len(request.system or "")
    return chars // 4 + (request.max_tokens or DEFAULT_OUTPUT_ESTIMATE)


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
