"""Pools (connection groups): create, read, change, delete; the gateway routes by them.

Each change publishes ``pool.created``, ``pool.updated`` (with the ``changed`` field names) or
``pool.deleted``: the pool's ``id``, ``name`` and ``strategy``, heard by whoever may see it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ump_llm_connections.domain import (
    PoolCreate,
    PoolList,
    PoolMember,
    PoolMemberRead,
    PoolRead,
    PoolStrategy,
    PoolUpdate,
)
from ump_llm_connections.domain.access import OPEN_ACCESS, Principal
from ump_llm_connections.errors import Forbidden, NotFound
from ump_llm_connections.events import EventBus
from ump_llm_connections.store.pools import Loaded, PoolStore
from ump_llm_connections.store.tables import PoolMemberRow, PoolRow

log = logging.getLogger(__name__)


class PoolService:
    def __init__(self, store: PoolStore, events: EventBus | None = None) -> None:
        self._store = store
        self._events = events or EventBus()
        self._listeners: list[Callable[[], Awaitable[None]]] = []

    def subscribe(self, listener: Callable[[], Awaitable[None]]) -> None:
        self._listeners.append(listener)

    async def create(self, data: PoolCreate, *, caller: Principal = OPEN_ACCESS) -> PoolRead:
        """A member's pool is its own, shared with its team (a pool is a name to call)."""
        pool = PoolRow(
            id=uuid.uuid4(),
            name=data.name,
            description=data.description,
            strategy=data.strategy.value,
            owner=caller.owner,
            team=_team(caller, data.team, "team" in data.model_fields_set),
        )
        members = _member_rows(data.members)
        loaded = await self._store.save(pool, members, new=True, visible=caller.scope)
        await self._changed()
        log.info("created pool %r (%s, %d members)", pool.name, pool.strategy, len(data.members))
        self._events.publish("pool.created", event_data(pool), (pool.owner, pool.team))
        return read(loaded, caller)

    async def get(self, ref: str, *, caller: Principal = OPEN_ACCESS) -> PoolRead:
        return read(await self._loaded(ref, caller), caller)

    async def find(self, *, caller: Principal = OPEN_ACCESS) -> PoolList:
        items = [
            read(loaded, caller)
            for loaded in await self._store.all()
            if caller.can_see(loaded[0].owner, loaded[0].team)
        ]
        return PoolList(items=items, total=len(items))

    async def update(
        self, ref: str, patch: PoolUpdate, *, caller: Principal = OPEN_ACCESS
    ) -> PoolRead:
        pool, _ = await self._loaded(ref, caller, change=True)
        sent = patch.model_fields_set
        if "team" in sent:
            pool.team = _team(caller, patch.team, True)
        if "name" in sent and patch.name is not None:
            pool.name = patch.name
        if "description" in sent and patch.description is not None:
            pool.description = patch.description
        if "strategy" in sent and patch.strategy is not None:
            pool.strategy = patch.strategy.value
        members = _member_rows(patch.members) if patch.members is not None else None
        loaded = await self._store.save(pool, members, new=False, visible=caller.scope)
        await self._changed()
        log.info("updated pool %r: %s", pool.name, ", ".join(sorted(sent)))
        data = {**event_data(pool), "changed": sorted(sent)}
        self._events.publish("pool.updated", data, (pool.owner, pool.team))
        return read(loaded, caller)

    async def delete(self, ref: str, *, caller: Principal = OPEN_ACCESS) -> PoolRead:
        """Delete a pool (not its connections); returns it as it was."""
        loaded = await self._loaded(ref, caller, change=True)
        pool = loaded[0]
        if not await self._store.delete(pool.id):
            raise _not_found(ref)
        await self._changed()
        log.info("deleted pool %r", pool.name)
        self._events.publish("pool.deleted", event_data(pool), (pool.owner, pool.team))
        return read(loaded, caller)

    async def _loaded(self, ref: str, caller: Principal, *, change: bool = False) -> Loaded:
        try:
            loaded = await self._store.get(uuid.UUID(ref))
        except ValueError:
            loaded = await self._store.get_by_name(ref)
        if loaded is None or not caller.can_see(loaded[0].owner, loaded[0].team):
            raise _not_found(ref)
        if change and not caller.can_change(loaded[0].owner):
            raise Forbidden(
                f"pool '{loaded[0].name}' is your team's but not yours: only its owner or an "
                "admin can change it"
            )
        return loaded

    async def _changed(self) -> None:
        for listener in self._listeners:
            await listener()


def read(loaded: Loaded, caller: Principal = OPEN_ACCESS) -> PoolRead:
    """A pool as this caller sees it: the members it may not see are left out."""
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
            for m, name, owner, team in members
            if caller.can_see(owner, team)
        ],
        owner=pool.owner,
        team=pool.team,
        created_at=pool.created_at,
        updated_at=pool.updated_at,
    )


def event_data(pool: PoolRow) -> dict[str, Any]:
    """What an event says about a pool: which one it is and how it routes."""
    return {"id": str(pool.id), "name": pool.name, "strategy": pool.strategy}


def _team(caller: Principal, team: str | None, sent: bool) -> str | None:
    if caller.is_admin:
        return team
    if sent and team is not None and team != caller.team:
        raise Forbidden("a member can share a pool only with its own team", field="team")
    return team if sent else caller.team


def _member_rows(members: list[PoolMember]) -> list[PoolMemberRow]:
    return [
        PoolMemberRow(connection_id=m.connection_id, priority=m.priority, weight=m.weight)
        for m in members
    ]


def _not_found(ref: str) -> NotFound:
    shown = ref if len(ref) <= 80 else ref[:77] + "..."
    return NotFound(f"no pool with id or name '{shown}'", field="id")
