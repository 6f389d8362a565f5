"""The spot instances' repository: ``llm_spot_instances``, and the changes an instance's life makes
to its connection, written in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ump_llm_connections.clock import utcnow
from ump_llm_connections.errors import Conflict
from ump_llm_connections.store.connections import Visibility
from ump_llm_connections.store.tables import ConnectionRow, SpotInstanceRow, UsageRow

S = SpotInstanceRow


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """What an instance's life does to its connection (None: leave as it is)."""

    is_active: bool | None = None
    status: str | None = None
    last_error: str | None = None
    clear_error: bool = False
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class Moved:
    """An instance after a change, and its connection before and after (None: it has none)."""

    row: SpotInstanceRow
    connection: ConnectionRow | None
    was_active: bool = False
    old_status: str | None = None
    changed: bool = False  # the connection changed: the gateway must hear of it


class SpotStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add(self, row: SpotInstanceRow, change: ConnectionChange | None = None) -> Moved:
        """Insert an instance, and link its connection to it. An instance already recorded (by
        another replica, in a race) is a ``Conflict``."""
        async with self._sessions() as session:
            session.add(row)
            moved = await self._apply(session, row, change or ConnectionChange())
            if moved.connection is not None:
                moved.connection.aws_instance_id = row.aws_instance_id
                moved.connection.aws_region = row.region
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(
                    f"instance {row.aws_instance_id} is already recorded", field="aws_instance_id"
                ) from None
            return moved

    async def get(self, spot_id: uuid.UUID) -> SpotInstanceRow | None:
        async with self._sessions() as session:
            return await session.get(S, spot_id)

    async def by_instance(self, instance_id: str) -> SpotInstanceRow | None:
        async with self._sessions() as session:
            return await session.scalar(select(S).where(S.aws_instance_id == instance_id))

    async def find(self, visible: Visibility = None) -> Sequence[SpotInstanceRow]:
        query = select(S).order_by(S.created_at.desc(), S.id)
        if visible is not None:
            owner, team = visible
            seen = [S.owner == owner] if owner is not None else []
            if team is not None:
                seen.append(S.team == team)
            if not seen:
                return []
            query = query.where(or_(*seen))
        async with self._sessions() as session:
            return (await session.scalars(query)).all()

    async def live(self, states: Sequence[str]) -> Sequence[SpotInstanceRow]:
        """The instances in one of ``states``: those the reconciler watches."""
        async with self._sessions() as session:
            return (await session.scalars(select(S).where(S.state.in_(states)))).all()

    async def regions(self, states: Sequence[str]) -> list[str]:
        query = select(S.region).where(S.state.in_(states)).distinct()
        async with self._sessions() as session:
            return sorted((await session.scalars(query)).all())

    async def change(
        self,
        spot_id: uuid.UUID,
        apply: Callable[[SpotInstanceRow], ConnectionChange | None],
    ) -> Moved | None:
        """Change an instance (``apply`` edits the row, and says what its connection becomes),
        in one transaction with its connection. None: no such instance."""
        async with self._sessions() as session:
            row = await session.get(S, spot_id, with_for_update=True)
            if row is None:
                return None
            change = apply(row)
            row.updated_at = utcnow()
            moved = await self._apply(session, row, change or ConnectionChange())
            await session.commit()
            return moved

    async def tokens_served(self, connection_id: uuid.UUID, since: datetime | None) -> int:
        """Prompt and completion tokens the connection served (since ``since``)."""
        U = UsageRow
        query = select(
            func.coalesce(
                func.sum(func.coalesce(U.prompt_tokens, 0) + func.coalesce(U.completion_tokens, 0)),
                0,
            )
        ).where(U.connection_id == connection_id)
        if since is not None:
            query = query.where(U.created_at >= since)
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    @staticmethod
    async def _apply(
        session: AsyncSession, row: SpotInstanceRow, change: ConnectionChange
    ) -> Moved:
        if row.connection_id is None:
            return Moved(row=row, connection=None)
        connection = await session.get(ConnectionRow, row.connection_id)
        if connection is None:
            return Moved(row=row, connection=None)
        was_active, old_status = connection.is_active, connection.status
        changed = False
        if change.base_url is not None and change.base_url != connection.base_url:
            connection.base_url, changed = change.base_url, True
        if change.is_active is not None and change.is_active != connection.is_active:
            connection.is_active, changed = change.is_active, True
            connection.deactivated_by_health = False
        if change.status is not None and change.status != connection.status:
            connection.status, changed = change.status, True
        if change.last_error is not None:
            connection.last_error = change.last_error
        elif change.clear_error:
            connection.last_error = None
        if changed:
            connection.updated_at = utcnow()  # the gateway's change check reads it
        return Moved(row, connection, was_active, old_status, changed)
