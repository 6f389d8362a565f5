"""The health monitor: probes every connection on a schedule, inside the server.

Each connection is due every ``UMP_HEALTH_INTERVAL_S`` (or its own ``health_interval_s``), with
±10 % jitter and a random first offset, so a thousand connections spread over the interval
instead of stampeding; at most ``UMP_HEALTH_CONCURRENCY`` probes run at once, so the gateway
keeps its share of the loop. A connection the monitor deactivated is re-probed four times less
often, and comes back by itself only if its ``auto_reactivate`` is set. A probe is ``cheap``
(list the models: no tokens) unless the connection asks for ``generate`` (a one-token prompt).

Passive checks: when the gateway sees a connection fail ``threshold`` calls in a row
(``gateway.outliers``), ``suspect`` records that as a check of kind ``passive`` (same state
machine, thresholds, events and auto-deactivation as a scheduled probe) and sends a ``generate``
probe at once. Until a generated answer comes back, the connection's probes generate: a model
list that still answers must not mark healthy a server whose chat calls fail.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import aiohttp

from ump_llm_connections.background import periodic
from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import ConnectionStatus, ProbeMode
from ump_llm_connections.errors import ConfigurationError, UmpError
from ump_llm_connections.health import ConnectionTester, Probe, cheap_probe, probe
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.registry import Registry
from ump_llm_connections.store.health import HealthStore, MonitorLease

log = logging.getLogger(__name__)

DISABLED_SLOWDOWN = 4
JITTER = 0.1
PRUNE_EVERY_S = 3600.0


class HealthMonitor:
    def __init__(
        self,
        registry: Registry,
        tester: ConnectionTester,
        health: HealthStore,
        http: aiohttp.ClientSession,
        lease: MonitorLease,
        *,
        interval_s: float,
        concurrency: int,
        retention: timedelta,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        self._tester = tester
        self._health = health
        self._http = http
        self._lease = lease
        self._leading: bool | None = None
        self._interval_s = interval_s
        self._limit = asyncio.Semaphore(concurrency)
        self._retention = retention
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._due: dict[uuid.UUID, float] = {}
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        tick_s = min(5.0, max(0.05, interval_s / 10))
        self._scheduler = periodic("health monitor tick", self.tick, tick_s, first_now=True)
        self._suspects: set[uuid.UUID] = set()
        self._passive: set[asyncio.Task[None]] = set()
        self._recording: set[asyncio.Task[ConnectionStatus | None]] = set()
        self._pruned_at = float("-inf")

    async def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> None:
        """Stop scheduling, cancel the probes in flight and wait for them to end."""
        await self._scheduler.stop()
        probes = [*self._running.values(), *self._passive]
        for task in probes:
            task.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        await asyncio.gather(*self._recording, return_exceptions=True)
        await self._lease.release()

    async def tick(self) -> None:
        """Start the probes that are due; prune old checks once an hour. With several
        replicas on PostgreSQL, only the one holding the lease probes."""
        leading = await self._lease.hold()
        if leading != self._leading:
            self._leading = leading
            log.info(
                "health monitor: %s",
                "this replica probes" if leading else "another replica probes; this one stands by",
            )
        if not leading:
            self._due.clear()  # when it takes over, it spreads its first probes again
            return
        now = self._clock()
        seen: set[uuid.UUID] = set()
        for connection in await self._health.schedule():
            connection_id = connection.id
            seen.add(connection_id)
            every = float(connection.health_interval_s or self._interval_s)
            if not connection.is_active:
                if not connection.deactivated_by_health:
                    continue
                every *= DISABLED_SLOWDOWN
            due = self._due.get(connection_id)
            if due is None:  # first sight: somewhere in the first interval, not all at once
                self._due[connection_id] = now + self._rng.uniform(0, every)
                continue
            if now >= due and connection_id not in self._running:
                self._due[connection_id] = now + every * self._rng.uniform(1 - JITTER, 1 + JITTER)
                self._running[connection_id] = asyncio.create_task(self._probe(connection_id))
        for gone in set(self._due) - seen:
            del self._due[gone]
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            pruned = await self._health.prune(utcnow() - self._retention)
            if pruned:
                log.info("pruned %d health checks older than %s", pruned, self._retention)

    def suspect(self, connection_id: uuid.UUID, exc: ProviderError) -> None:
        """The gateway saw ``connection_id`` fail ``threshold`` calls in a row (``exc``, the
        last): record it and probe with a real prompt at once. Works whether or not the
        scheduled monitor runs on this replica."""
        self._suspects.add(connection_id)
        task = asyncio.create_task(self._after_trip(connection_id, exc), name="passive-check")
        self._passive.add(task)
        task.add_done_callback(self._passive.discard)

    async def _after_trip(self, connection_id: uuid.UUID, exc: ProviderError) -> None:
        try:
            error = ProviderError(
                exc.kind,
                f"{self._tester.thresholds.failures} gateway calls in a row failed; the last: "
                f"{exc.message}",
                status=exc.status,
            )
            found = Probe(started=utcnow(), latency_ms=0.0, error=error)
            await self._record(connection_id, "passive", found)
            if connection_id not in self._running:  # a probe under way will tell as much
                self._running[connection_id] = asyncio.create_task(self._probe(connection_id))
        except Exception:  # a background check must not die silently, nor kill the gateway
            log.exception("passive health check of %s failed", connection_id)

    async def _probe(self, connection_id: uuid.UUID) -> None:
        try:
            await self._probe_now(connection_id)
        finally:
            self._running.pop(connection_id, None)

    async def _probe_now(self, connection_id: uuid.UUID) -> None:
        async with self._limit:
            try:
                connection, target = await self._registry.target(str(connection_id))
            except UmpError as exc:  # deleted, or a key this server cannot read
                if isinstance(exc, ConfigurationError):
                    await self._record(connection_id, "scheduled", _unbuildable(exc))
                return
            generate = connection.probe_mode is ProbeMode.generate
            if generate or connection_id in self._suspects:
                found = await probe(target, self._http, "ping", 1, connection.temperature)
                if found.error is None:
                    self._suspects.discard(connection_id)
            else:
                found = await cheap_probe(target, self._http)
            await self._record(connection_id, "scheduled", found)

    async def _record(self, connection_id: uuid.UUID, kind: str, found: Probe) -> None:
        """Record a check. A stop cancels probes, but not a write under way: a database session
        cancelled mid-transaction is left for the garbage collector (stop waits for it)."""
        task = asyncio.create_task(self._tester.apply(connection_id, kind, found, enforce=True))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)
        await asyncio.shield(task)


def _unbuildable(exc: UmpError) -> Probe:
    """A probe that could not be built: our configuration's fault, not the upstream's."""
    error = ProviderError(ErrorKind.bad_request, f"the probe could not be built: {exc.message}")
    return Probe(started=utcnow(), latency_ms=0.0, error=error, unbuildable=True)
