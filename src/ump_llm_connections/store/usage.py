"""Usage rows: appended in batches by the recorder, read back for reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ump_llm_connections.domain import ConnectionActivity
from ump_llm_connections.store.tables import ConnectionRow, HealthCheckRow, PoolRow, UsageRow

U = UsageRow
H = HealthCheckRow
USAGE = UsageRow.metadata.tables[UsageRow.__tablename__]


class UsageStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def append(
        self,
        rows: list[dict[str, Any]],
        last_used: dict[uuid.UUID, datetime],
        *,
        skip_stored: bool = False,
    ) -> int:
        """Insert usage rows and move ``last_used_at`` forward, in one transaction.

        Rows of connections deleted meanwhile are dropped (their history went with them); rows
        of pools deleted meanwhile keep their connection but lose the pool. With
        ``skip_stored``, rows whose ``event_id`` is stored already are left out (a replay).
        Returns how many rows were stored.
        """
        async with self._sessions() as session:
            if skip_stored:
                rows = await self._not_stored(session, rows)
            for attempt in range(3):  # a delete may race the check: check again
                try:
                    await self._write(session, rows, last_used)
                    break
                except IntegrityError:
                    await session.rollback()
                    if attempt == 2:
                        raise
                    rows, last_used = await self._without_deleted(session, rows, last_used)
            await session.commit()
        return len(rows)

    async def _not_stored(
        self, session: AsyncSession, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        ids = [row["event_id"] for row in rows]
        stored = set((await session.scalars(select(U.event_id).where(U.event_id.in_(ids)))).all())
        return [row for row in rows if row["event_id"] not in stored]

    async def _without_deleted(
        self,
        session: AsyncSession,
        rows: list[dict[str, Any]],
        last_used: dict[uuid.UUID, datetime],
    ) -> tuple[list[dict[str, Any]], dict[uuid.UUID, datetime]]:
        """Drop rows of deleted connections; forget pools deleted since (usage outlives them)."""
        ids = {row["connection_id"] for row in rows}
        alive = set(
            (await session.scalars(select(ConnectionRow.id).where(ConnectionRow.id.in_(ids)))).all()
        )
        pool_ids = {row["pool_id"] for row in rows if row.get("pool_id") is not None}
        pools = set(
            (await session.scalars(select(PoolRow.id).where(PoolRow.id.in_(pool_ids)))).all()
        )
        kept = [
            {**row, "pool_id": row["pool_id"] if row.get("pool_id") in pools else None}
            for row in rows
            if row["connection_id"] in alive
        ]
        return kept, {k: v for k, v in last_used.items() if k in alive}

    async def _write(
        self,
        session: AsyncSession,
        rows: list[dict[str, Any]],
        last_used: dict[uuid.UUID, datetime],
    ) -> None:
        connection = await session.connection()
        if rows:  # Core, not the ORM: a plain executemany, no unit of work
            await connection.execute(insert(USAGE), rows)
        if last_used:
            table = ConnectionRow.metadata.tables[ConnectionRow.__tablename__]
            c = table.c
            await connection.execute(
                update(table)
                .where(
                    and_(
                        c.id == bindparam("cid"),
                        or_(c.last_used_at.is_(None), c.last_used_at < bindparam("used")),
                    )
                )
                .values(last_used_at=bindparam("used")),
                [{"cid": k, "used": v} for k, v in last_used.items()],
            )

    async def costs_since(
        self, start: datetime, *, by_token: bool = False
    ) -> dict[uuid.UUID, float]:
        """Spend since ``start`` per connection, or (``by_token``) per API token."""
        key = U.token_id if by_token else U.connection_id
        query = (
            select(key, func.sum(U.cost))
            .where(U.created_at >= start, U.cost.is_not(None), key.is_not(None))
            .group_by(key)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return {cid: float(total or 0) for cid, total in rows if cid is not None}

    async def activity(self, ids: list[uuid.UUID], since: datetime) -> list[ConnectionActivity]:
        """Per connection of ``ids``: the latency of its last gateway call (of its last test
        when it has none) and its calls since ``since``. Connections with neither a call nor a
        test are left out. Index seeks only: the newest row per connection and one grouped
        count over the rows since ``since``."""
        if not ids:
            return []
        c = ConnectionRow
        last_call = (
            select(U.latency_ms)
            .where(U.connection_id == c.id)
            .order_by(U.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        last_test = (
            select(H.latency_ms)
            .where(H.connection_id == c.id)
            .order_by(H.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        has_call = select(U.id).where(U.connection_id == c.id).exists()
        has_test = select(H.id).where(H.connection_id == c.id).exists()
        latest = select(c.id, func.coalesce(last_call, last_test), or_(has_call, has_test)).where(
            c.id.in_(ids)
        )
        today = (
            select(U.connection_id, func.count())
            .where(U.connection_id.in_(ids), U.created_at >= since)
            .group_by(U.connection_id)
        )
        async with self._sessions() as session:
            seen = (await session.execute(latest)).all()
            counts: dict[uuid.UUID, int] = dict((await session.execute(today)).tuples().all())
        return [
            ConnectionActivity(
                connection_id=cid, last_latency_ms=latency, requests_today=counts.get(cid, 0)
            )
            for cid, latency, active in seen
            if active
        ]
