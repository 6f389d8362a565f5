"""Usage read back: reports per connection, across connections and per pool, and the
month-to-date spend the gateway's budgets start from. The database totals the rows
(``store.usage_report``); this folds its groups into the reports."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any, TypeVar

from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import (
    ActivityList,
    ConnectionUsage,
    PoolMemberStats,
    PoolStats,
    PoolUsage,
    SourceUsage,
    Tally,
    UsageBucket,
    UsageReport,
    UsageScope,
)
from ump_llm_connections.domain.access import OPEN_ACCESS, Principal
from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.gateway.usage import parse_duration
from ump_llm_connections.pools import PoolService
from ump_llm_connections.registry import Registry
from ump_llm_connections.store.usage import UsageStore
from ump_llm_connections.store.usage_report import Dimension, UsageGroups

__all__ = ["UsageReports"]

MAX_BUCKETS = 500
_Ranked = TypeVar("_Ranked", ConnectionUsage, PoolUsage, SourceUsage)


class UsageReports:
    def __init__(
        self, store: UsageStore, groups: UsageGroups, registry: Registry, pools: PoolService
    ) -> None:
        self._store = store
        self._groups = groups
        self._registry = registry
        self._pools = pools

    async def connection(
        self, ref: str, *, window: str, bucket: str | None, caller: Principal = OPEN_ACCESS
    ) -> UsageReport:
        """One connection's usage (by id or name)."""
        connection = await self._registry.get(ref, caller=caller)
        frame = _Frame(window, bucket, utcnow())
        scope = frame.scope(connection_id=connection.id)
        return _report(frame, await self._tallies(scope, ("bucket", "source")))

    async def overall(
        self, *, window: str, bucket: str | None, caller: Principal = OPEN_ACCESS
    ) -> UsageReport:
        """Usage across the connections this caller may see, with totals per connection and
        per pool."""
        frame = _Frame(window, bucket, utcnow())
        names = await self._registry.names(caller=caller)
        scope = frame.scope(connection_ids=None if caller.is_admin else list(names))
        pool_names = {p.id: p.name for p in (await self._pools.find(caller=caller)).items}
        tallies = await self._tallies(scope, ("bucket", "source", "connection", "pool"))
        report = _report(frame, tallies)
        report.connections = _ranked(
            ConnectionUsage(connection_id=cid, name=names.get(cid), **tally.stats())
            for cid, tally in tallies["connection"].items()
        )
        report.pools = _ranked(
            PoolUsage(pool_id=pid, name=pool_names.get(pid), **tally.stats())
            for pid, tally in tallies["pool"].items()
        )
        return report

    async def pool(self, ref: str, *, window: str, caller: Principal = OPEN_ACCESS) -> PoolStats:
        """How a pool's members compare over ``window`` (an A/B test's results); only the
        members this caller may see."""
        pool = await self._pools.get(ref, caller=caller)
        frame = _Frame(window, window, utcnow())
        names = {m.connection_id: m.connection_name for m in pool.members}
        scope = frame.scope(pool_id=pool.id, connection_ids=list(names))
        members = (await self._tallies(scope, ("connection",)))["connection"]
        totals = Tally()
        for tally in members.values():
            totals.merge(tally)
        return PoolStats(
            pool_id=pool.id,
            name=pool.name,
            strategy=pool.strategy,
            window_start=frame.start,
            window_end=frame.now,
            totals=totals.stats(),
            members=[
                PoolMemberStats(
                    connection_id=m.connection_id,
                    name=m.connection_name,
                    **members.get(m.connection_id, Tally()).stats(),
                )
                for m in pool.members
            ],
        )

    async def activity(
        self, ids: list[uuid.UUID], *, caller: Principal = OPEN_ACCESS
    ) -> ActivityList:
        """The list page's activity of the connections ``ids`` this caller may see."""
        if not caller.is_admin:
            visible = await self._registry.names(caller=caller)
            ids = [i for i in ids if i in visible]
        midnight = datetime.combine(utcnow().date(), time(), UTC)
        return ActivityList(items=await self._store.activity(list(dict.fromkeys(ids)), midnight))

    async def costs_since(self, start: datetime) -> dict[uuid.UUID, float]:
        """Spend per connection and per API token since ``start`` (every replica's calls
        included), keyed by their ids."""
        return {
            **await self._store.costs_since(start),
            **await self._store.costs_since(start, by_token=True),
        }

    async def _tallies(
        self, scope: UsageScope, dimensions: Iterable[Dimension]
    ) -> dict[Dimension, dict[Any, Tally]]:
        """Per dimension, a tally per group key. The queries run side by side, each on a
        connection of its own (PostgreSQL and SQLite's WAL serve concurrent readers)."""
        wanted = list(dimensions)
        found = await asyncio.gather(
            *(self._groups.latency(scope, d) for d in wanted),
            *(self._groups.ttft(scope, d) for d in wanted),
        )
        tallies: dict[Dimension, dict[Any, Tally]] = {}
        for dimension, groups, timed in zip(
            wanted, found[: len(wanted)], found[len(wanted) :], strict=True
        ):
            by_key: dict[Any, Tally] = {}
            for group in groups:
                by_key.setdefault(group.key, Tally()).add(group)
            for ttft in timed:
                by_key.setdefault(ttft.key, Tally()).add_ttft(ttft)
            tallies[dimension] = by_key
        return tallies


class _Frame:
    """A report's window and buckets: ``count`` buckets of ``step`` from ``first`` (aligned on
    the step since the epoch) cover ``start`` to ``now``."""

    def __init__(self, window: str, bucket: str | None, now: datetime) -> None:
        span = parse_duration(window, "window")
        step = parse_duration(bucket, "bucket") if bucket else _auto_bucket(span)
        if span / step > MAX_BUCKETS:
            raise InvalidInput(
                f"window / bucket gives more than {MAX_BUCKETS} buckets", field="bucket"
            )
        self.now = now
        self.start = now - span
        self.step = step
        self.step_s = int(step.total_seconds())
        self.first_s = int(self.start.timestamp()) // self.step_s * self.step_s
        self.first = datetime.fromtimestamp(self.first_s, UTC)
        self.count = math.ceil((now - self.first) / step)

    def scope(
        self,
        *,
        connection_id: uuid.UUID | None = None,
        pool_id: uuid.UUID | None = None,
        connection_ids: list[uuid.UUID] | None = None,
    ) -> UsageScope:
        return UsageScope(
            self.start, self.first_s, self.step_s, connection_id, pool_id, connection_ids
        )


def _report(frame: _Frame, tallies: dict[Dimension, dict[Any, Tally]]) -> UsageReport:
    """Totals, time buckets and per-source totals (the buckets add up to the totals)."""
    buckets = [Tally() for _ in range(frame.count)]
    for index, tally in tallies["bucket"].items():
        buckets[min(int(index), frame.count - 1)].merge(tally)  # calls since ``now``: the last
    totals = Tally()
    for tally in buckets:
        totals.merge(tally)
    return UsageReport(
        window_start=frame.start,
        window_end=frame.now,
        bucket_seconds=frame.step_s,
        totals=totals.stats(),
        buckets=[
            UsageBucket(start=frame.first + i * frame.step, **tally.stats())
            for i, tally in enumerate(buckets)
        ],
        sources=_ranked(
            SourceUsage(source=source, **tally.stats())
            for source, tally in tallies["source"].items()
        ),
    )


def _ranked(items: Iterable[_Ranked]) -> list[_Ranked]:
    return sorted(items, key=lambda item: -item.requests)


def _auto_bucket(span: timedelta) -> timedelta:
    """About 24 to 60 buckets, on a round size."""
    for size in (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400):
        if span.total_seconds() / size <= 60:
            return timedelta(seconds=size)
    return timedelta(days=1)
