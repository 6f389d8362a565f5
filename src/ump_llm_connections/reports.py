"""Usage read back: reports per connection, across connections and per pool, and the
month-to-date spend the gateway's budgets start from. The rows come from the store; the
arithmetic is ``gateway.usage.report``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time

from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import ActivityList, PoolMemberStats, PoolStats, UsageReport
from ump_llm_connections.domain.access import OPEN_ACCESS, Principal
from ump_llm_connections.gateway.usage import parse_duration, report
from ump_llm_connections.pools import PoolService
from ump_llm_connections.registry import Registry
from ump_llm_connections.store.usage import UsageStore

__all__ = ["UsageReports"]


class UsageReports:
    def __init__(self, store: UsageStore, registry: Registry, pools: PoolService) -> None:
        self._store = store
        self._registry = registry
        self._pools = pools

    async def connection(
        self, ref: str, *, window: str, bucket: str | None, caller: Principal = OPEN_ACCESS
    ) -> UsageReport:
        """One connection's usage (by id or name)."""
        connection = await self._registry.get(ref, caller=caller)
        now = utcnow()
        start = now - parse_duration(window, "window")
        rows = await self._store.since(start, connection_id=connection.id)
        return report(rows, window=window, bucket=bucket, now=now)

    async def overall(
        self, *, window: str, bucket: str | None, caller: Principal = OPEN_ACCESS
    ) -> UsageReport:
        """Usage across the connections this caller may see, with totals per connection and
        per pool."""
        now = utcnow()
        rows = await self._store.since(now - parse_duration(window, "window"))
        names = await self._registry.names(caller=caller)
        if not caller.is_admin:
            rows = [row for row in rows if row.connection_id in names]
        pool_names = {p.id: p.name for p in (await self._pools.find(caller=caller)).items}
        return report(
            rows, window=window, bucket=bucket, now=now, names=names, pool_names=pool_names
        )

    async def pool(self, ref: str, *, window: str, caller: Principal = OPEN_ACCESS) -> PoolStats:
        """How a pool's members compare over ``window`` (an A/B test's results); only the
        members this caller may see."""
        pool = await self._pools.get(ref, caller=caller)
        now = utcnow()
        rows = await self._store.since(now - parse_duration(window, "window"), pool_id=pool.id)
        names = {m.connection_id: m.connection_name for m in pool.members}
        rows = [row for row in rows if row.connection_id in names]
        summary = report(rows, window=window, bucket=window, now=now, names=names)
        members = {c.connection_id: c for c in summary.connections or []}
        empty = report([], window="1m", bucket="1m", now=now).totals.model_dump()
        return PoolStats(
            pool_id=pool.id,
            name=pool.name,
            strategy=pool.strategy,
            window_start=summary.window_start,
            window_end=summary.window_end,
            totals=summary.totals,
            members=[
                PoolMemberStats(**members[m.connection_id].model_dump())
                if m.connection_id in members
                else PoolMemberStats(connection_id=m.connection_id, name=m.connection_name, **empty)
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
