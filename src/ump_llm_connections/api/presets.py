"""``/api/presets``: the guide's stacks, applied as connections and a pool in one call."""

from __future__ import annotations

from fastapi import APIRouter

from ump_llm_connections import presets
from ump_llm_connections.api.deps import Clean, PoolsDep, PrincipalDep, RegistryDep
from ump_llm_connections.domain import PresetApplied, PresetApply, PresetInfo

router = APIRouter(prefix="/api/presets", tags=["presets"], dependencies=[Clean])


@router.get("", summary="The presets and what each would create")
async def list_presets() -> list[PresetInfo]:
    return [preset.info() for preset in presets.PRESETS]


@router.post("/{name}/apply", status_code=201, summary="Create a preset's connections and pool")
async def apply_preset(
    name: str, body: PresetApply, registry: RegistryDep, pools: PoolsDep, caller: PrincipalDep
) -> PresetApplied:
    return await presets.apply(presets.find(name), body, registry, pools, caller=caller)
