"""Pools (connection groups): create, read, change, delete; the gateway routes by them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from ump_llm_connections.domain import (
    PoolCreate,
    PoolList,
    PoolMember,
    PoolMemberRead,
    PoolRead,
    PoolStrategy,
    PoolUpdate,
)
from ump_llm_connections.errors import NotFound
from ump_llm_connections.store.pools import Loaded, PoolStore
from ump_llm_connections.store.tables import PoolMemberRow, PoolRow

log = logging.getLogger(__name__)


class PoolService:
    def __init__(self, store: PoolStore) -> None:
        self._store = store
        self._listeners: list[Callable[[], Awaitable[None]]] = []

    def subscribe(self, listener: Callable[[], Awaitable[None]]) -> None:
        self._listeners.append(listener)

    async def create(self, data: PoolCreate) -> PoolRead:
        pool = PoolRow(
            id=uuid.uuid4(),
            name=data.name,
            description=data.description,
            strategy=data.strategy.value,
        )
        loaded = await self._store.save(pool, _member_rows(data.members), new=True)
        await self._changed()
        log.info("created pool %r (%s, %d members)", pool.name, pool.strategy, len(data.members))
        return read(loaded)

    async def get(self, ref: str) -> PoolRead:
        return read(await self._loaded(ref))

    async def find(self) -> PoolList:
        items = [read(loaded) for loaded in await self._store.all()]
        return PoolList(items=items, total=len(items))

    async def update(self, ref: str, patch: PoolUpdate) -> PoolRead:
        pool, _ = await self._loaded(ref)
        sent = patch.model_fields_set
        if "name" in sent and patch.name is not None:
            pool.name = patch.name
        if "description" in sent and patch.description is not None:
            pool.description = patch.description
        if "strategy" in sent and patch.strategy is not None:
            pool.strategy = patch.strategy.value
        members = _member_rows(patch.members) if patch.members is not None else None
        loaded = await self._store.save(pool, members, new=False)
        await self._changed()
        log.info("updated pool %r: %s", pool.name, ", ".join(sorted(sent)))
        return read(loaded)

    async def delete(self, ref: str) -> None:
        pool, _ = await self._loaded(ref)
        if not await self._store.delete(pool.id):
            raise _not_found(ref)
        await self._changed()
        log.info("deleted pool %r", pool.name)

    async def _loaded(self, ref: str) -> Loaded:
        try:
            loaded = await self._store.get(uuid.UUID(ref))
        except ValueError:
            loaded = await self._store.get_by_name(ref)
        if loaded is None:
            raise _not_found(ref)
        return loaded

    async def _changed(self) -> None:
        for listener in self._listeners:
            await listener()


def read(loaded: Loaded) -> PoolRead:
    pool, members = loaded
    return PoolRead(
        id=pool.id,
        name=pool.name,
        description=pool.description,
        strategy=PoolStrategy(pool.strategy),
        members=[
            PoolMemberRead(
                connection_id=m.connection_id,
                connection_name=name,
                priority=m.priority,
                weight=m.weight,
            )
            for m, name in members
        ],
        created_at=pool.created_at,
        updated_at=pool.updated_at,
    )


def _member_rows(members: list[PoolMember]) -> list[PoolMemberRow]:
    return [
        PoolMemberRow(connection_id=m.connection_id, priority=m.priority, weight=m.weight)
        for m in members
    ]


def _not_found(ref: str) -> NotFound:
    shown = ref if len(ref) <= 80 else ref[:77] + "..."
    return NotFound(f"no pool with id or name '{shown}'", field="id")
