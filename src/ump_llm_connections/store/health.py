"""Health-check history, and the connection status each check leaves behind."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ump_llm_connections.store.tables import ConnectionRow, HealthCheckRow

H = HealthCheckRow


class HealthStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def mark_testing(self, connection_id: uuid.UUID) -> None:
        """Show a test in progress (only on active connections: inactive stays inactive)."""
        async with self._sessions() as session:
            await session.execute(
                update(ConnectionRow)
                .where(ConnectionRow.id == connection_id, ConnectionRow.is_active.is_(True))
                .values(status="testing")
            )
            await session.commit()

    async def forget_unfinished(self) -> int:
        """Tests cut off by a stopped server leave "testing" behind: make those "unknown"."""
        async with self._sessions() as session:
            result = await session.execute(
                update(ConnectionRow)
                .where(ConnectionRow.status == "testing")
                .values(status="unknown")
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def record(self, check: HealthCheckRow) -> ConnectionRow | None:
        """Store a check and update its connection's status, failures and last test, at once."""
        async with self._sessions() as session:
            row = await session.get(ConnectionRow, check.connection_id)
            if row is None:  # deleted while it was being tested
                return None
            session.add(check)
            row.last_tested_at = check.created_at
            if check.success:
                row.consecutive_failures = 0
                row.last_error = None
            else:
                row.consecutive_failures += 1
                row.last_error = check.error
            if row.is_active:
                row.status = "active" if check.success else "error"
            await session.commit()
            return row

    async def history(
        self, connection_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[HealthCheckRow], int]:
        where = H.connection_id == connection_id
        query = select(H).where(where).order_by(H.created_at.desc(), H.id.desc())
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(H).where(where))
            rows = (await session.scalars(query.limit(limit).offset(offset))).all()
        return rows, int(total or 0)
