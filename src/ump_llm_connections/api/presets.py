"""``/api/presets``: the guide's stacks, applied as connections and a pool in one call."""

from __future__ import annotations

from fastapi import APIRouter

from ump_llm_connections import presets
from ump_llm_connections.api.deps import ActorDep, Clean, PoolsDep, RegistryDep
from ump_llm_connections.domain import PresetApplied, PresetApply, PresetInfo
from ump_llm_connections.domain.audit import AuditAction, AuditTarget, TargetType

router = APIRouter(prefix="/api/presets", tags=["presets"], dependencies=[Clean])


@router.get("", summary="The presets and what each would create")
async def list_presets() -> list[PresetInfo]:
    return [preset.info() for preset in presets.PRESETS]


@router.post("/{name}/apply", status_code=201, summary="Create a preset's connections and pool")
async def apply_preset(
    name: str, body: PresetApply, registry: RegistryDep, pools: PoolsDep, actor: ActorDep
) -> PresetApplied:
    preset = presets.find(name)
    applied = await presets.apply(preset, body, registry, pools, caller=actor.caller)
    await actor.did(
        AuditAction.preset_apply, AuditTarget(TargetType.preset, preset.slug, preset.name)
    )
    for connection in applied.connections:
        target = AuditTarget(TargetType.connection, connection.id, connection.name)
        await actor.did(AuditAction.connection_create, target, ["preset"])
    pool = applied.pool
    await actor.did(AuditAction.pool_create, AuditTarget(TargetType.pool, pool.id, pool.name))
    return applied
