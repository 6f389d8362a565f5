"""Usage reports: per connection and across connections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ump_llm_connections.api.deps import Clean, Pools, RegistryDep
from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import UsageReport
from ump_llm_connections.gateway.usage import parse_duration, report
from ump_llm_connections.store.usage import UsageStore

router = APIRouter(tags=["usage"], dependencies=[Clean])

Window = Annotated[str, Query(description="How far back: 30m, 24h, 7d (at most 31d)")]
Bucket = Annotated[
    str | None, Query(description="Bucket size, e.g. 1h; by default about 24 to 60 buckets")
]


def _store(request: Request) -> UsageStore:
    store: UsageStore = request.app.state.usage_store
    return store


@router.get("/api/connections/{connection_id}/usage", summary="Usage of one connection")
async def connection_usage(
    connection_id: str,
    request: Request,
    registry: RegistryDep,
    window: Window = "24h",
    bucket: Bucket = None,
) -> UsageReport:
    connection = await registry.get(connection_id)
    now = utcnow()
    rows = await _store(request).since(
        now - parse_duration(window, "window"), connection_id=connection.id
    )
    return report(rows, window=window, bucket=bucket, now=now)


@router.get("/api/usage", summary="Usage across connections, with totals per connection")
async def all_usage(
    request: Request,
    registry: RegistryDep,
    pools: Pools,
    window: Window = "24h",
    bucket: Bucket = None,
) -> UsageReport:
    now = utcnow()
    rows = await _store(request).since(now - parse_duration(window, "window"))
    names = await registry.names()
    pool_names = {p.id: p.name for p in (await pools.find()).items}
    return report(rows, window=window, bucket=bucket, now=now, names=names, pool_names=pool_names)
