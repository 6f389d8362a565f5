"""``/api/pools``: connection groups the gateway routes by, and how their members compare."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ump_llm_connections.api.deps import ActorDep, Clean, PoolsDep, PrincipalDep, UsageDep
from ump_llm_connections.domain import (
    PoolCreate,
    PoolList,
    PoolRead,
    PoolStats,
    PoolUpdate,
)
from ump_llm_connections.domain.audit import AuditAction, AuditTarget, TargetType

router = APIRouter(prefix="/api/pools", tags=["pools"], dependencies=[Clean])


@router.post("", status_code=201, summary="Create a pool")
async def create_pool(body: PoolCreate, pools: PoolsDep, actor: ActorDep) -> PoolRead:
    created = await pools.create(body, caller=actor.caller)
    await actor.did(AuditAction.pool_create, _target(created), body.model_fields_set)
    return created


@router.get("", summary="List pools")
async def list_pools(pools: PoolsDep, caller: PrincipalDep) -> PoolList:
    return await pools.find(caller=caller)


@router.get("/{pool_id}", summary="Get a pool (by id or name)")
async def get_pool(pool_id: str, pools: PoolsDep, caller: PrincipalDep) -> PoolRead:
    return await pools.get(pool_id, caller=caller)


@router.patch("/{pool_id}", summary="Change a pool; members replaces the whole list")
async def update_pool(pool_id: str, body: PoolUpdate, pools: PoolsDep, actor: ActorDep) -> PoolRead:
    updated = await pools.update(pool_id, body, caller=actor.caller)
    await actor.did(AuditAction.pool_update, _target(updated), body.model_fields_set)
    return updated


@router.delete("/{pool_id}", status_code=204, summary="Delete a pool (not its connections)")
async def delete_pool(pool_id: str, pools: PoolsDep, actor: ActorDep) -> Response:
    deleted = await pools.delete(pool_id, caller=actor.caller)
    await actor.did(AuditAction.pool_delete, _target(deleted))
    return Response(status_code=204)


@router.get("/{pool_id}/stats", summary="Compare the members (an A/B test's results)")
async def pool_stats(
    pool_id: str,
    usage: UsageDep,
    caller: PrincipalDep,
    window: Annotated[str, Query(description="How far back: 30m, 24h, 7d (at most 31d)")] = "24h",
) -> PoolStats:
    return await usage.pool(pool_id, window=window, caller=caller)


def _target(pool: PoolRead) -> AuditTarget:
    return AuditTarget(TargetType.pool, pool.id, pool.name)
