"""Pools and their members."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import name_key
from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.store.connections import Visibility, name_taken, visible_where
from ump_llm_connections.store.tables import (
    ConnectionRow,
    NameRow,
    PoolMemberRow,
    PoolRow,
)

# A pool with its members, each with its connection's name, owner and team: what every read
# returns (a member's connection is shown only to those who may see it).
MemberOf = tuple[PoolMemberRow, str, str | None, str | None]
Loaded = tuple[PoolRow, list[MemberOf]]


class PoolStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def save(
        self,
        pool: PoolRow,
        members: list[PoolMemberRow] | None,
        *,
        new: bool,
        visible: Visibility = None,
    ) -> Loaded:
        """Insert or update a pool (replacing its members when given), in one transaction;
        every member must be a connection the caller (``visible``) may see."""
        async with self._sessions() as session:
            if members is not None:
                await self._check_members(session, members, visible)
            key = name_key(pool.name)
            try:
                if new:
                    session.add(pool)
                    await session.flush()  # the pool row before the row naming it
                    session.add(NameRow(name_key=key, pool_id=pool.id))
                else:
                    pool.updated_at = utcnow()
                    await session.merge(pool)
                    # The name moves (or stays) in this transaction; a taken one is refused.
                    await session.execute(
                        update(NameRow).where(NameRow.pool_id == pool.id).values(name_key=key)
                    )
                await session.flush()  # the pool row before its members' rows
            except IntegrityError:
                raise name_taken(pool.name) from None
            if members is not None:
                if not new:
                    await session.execute(
                        delete(PoolMemberRow).where(PoolMemberRow.pool_id == pool.id)
                    )
                for member in members:
                    member.pool_id = pool.id
                session.add_all(members)
            await session.commit()
        loaded = await self.get(pool.id)
        assert loaded is not None
        return loaded

    async def get(self, pool_id: uuid.UUID) -> Loaded | None:
        async with self._sessions() as session:
            pool = await session.get(PoolRow, pool_id)
            return None if pool is None else (pool, await self._members(session, [pool.id]))

    async def get_by_name(self, name: str) -> Loaded | None:
        async with self._sessions() as session:
            pool = await session.scalar(
                select(PoolRow)
                .join(NameRow, NameRow.pool_id == PoolRow.id)
                .where(NameRow.name_key == name_key(name))
            )
            return None if pool is None else (pool, await self._members(session, [pool.id]))

    async def all(self) -> list[Loaded]:
        async with self._sessions() as session:
            pools = (await session.scalars(select(PoolRow).order_by(PoolRow.name))).all()
            members = await self._members(session, [p.id for p in pools])
        return [(p, [m for m in members if m[0].pool_id == p.id]) for p in pools]

    async def delete(self, pool_id: uuid.UUID) -> bool:
        async with self._sessions() as session:
            pool = await session.get(PoolRow, pool_id)
            if pool is None:
                return False
            await session.delete(pool)
            await session.commit()
            return True

    async def _members(
        self, session: AsyncSession, pool_ids: Sequence[uuid.UUID]
    ) -> list[MemberOf]:
        if not pool_ids:
            return []
        rows = await session.execute(
            select(PoolMemberRow, ConnectionRow.name, ConnectionRow.owner, ConnectionRow.team)
            .join(ConnectionRow, ConnectionRow.id == PoolMemberRow.connection_id)
            .where(PoolMemberRow.pool_id.in_(pool_ids))
            .order_by(PoolMemberRow.priority, ConnectionRow.name)
        )
        return [(member, name, owner, team) for member, name, owner, team in rows.all()]

    async def _check_members(
        self, session: AsyncSession, members: list[PoolMemberRow], visible: Visibility
    ) -> None:
        ids = [m.connection_id for m in members]
        query = select(ConnectionRow.id).where(ConnectionRow.id.in_(ids), *visible_where(visible))
        known = set((await session.scalars(query)).all())
        for index, member in enumerate(members):
            if member.connection_id not in known:
                raise InvalidInput(
                    f"no connection with id {member.connection_id}",
                    field=f"members.{index}.connection_id",
                )
