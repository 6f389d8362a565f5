"""``/api/pools``: connection groups the gateway routes by, and how their members compare."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ump_llm_connections.api.deps import Clean, Pools
from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import (
    PoolCreate,
    PoolList,
    PoolMemberStats,
    PoolRead,
    PoolStats,
    PoolUpdate,
)
from ump_llm_connections.gateway.usage import parse_duration, report
from ump_llm_connections.store.usage import UsageStore

router = APIRouter(prefix="/api/pools", tags=["pools"], dependencies=[Clean])


@router.post("", status_code=201, summary="Create a pool")
async def create_pool(body: PoolCreate, pools: Pools) -> PoolRead:
    return await pools.create(body)


@router.get("", summary="List pools")
async def list_pools(pools: Pools) -> PoolList:
    return await pools.find()


@router.get("/{pool_id}", summary="Get a pool (by id or name)")
async def get_pool(pool_id: str, pools: Pools) -> PoolRead:
    return await pools.get(pool_id)


@router.patch("/{pool_id}", summary="Change a pool; members replaces the whole list")
async def update_pool(pool_id: str, body: PoolUpdate, pools: Pools) -> PoolRead:
    return await pools.update(pool_id, body)


@router.delete("/{pool_id}", status_code=204, summary="Delete a pool (not its connections)")
async def delete_pool(pool_id: str, pools: Pools) -> Response:
    await pools.delete(pool_id)
    return Response(status_code=204)


@router.get("/{pool_id}/stats", summary="Compare the members (an A/B test's results)")
async def pool_stats(
    pool_id: str,
    request: Request,
    pools: Pools,
    window: Annotated[str, Query(description="How far back: 30m, 24h, 7d (at most 31d)")] = "24h",
) -> PoolStats:
    pool = await pools.get(pool_id)
    now = utcnow()
    store: UsageStore = request.app.state.usage_store
    rows = await store.since(now - parse_duration(window, "window"), pool_id=pool.id)
    names = {m.connection_id: m.connection_name for m in pool.members}
    summary = report(rows, window=window, bucket=window, now=now, names=names)
    members = {c.connection_id: c for c in summary.connections or []}
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
            else PoolMemberStats(connection_id=m.connection_id, name=m.connection_name, **_empty())
            for m in pool.members
        ],
    )


def _empty() -> dict[str, object]:
    return report([], window="1m", bucket="1m", now=utcnow()).totals.model_dump()
