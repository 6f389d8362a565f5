"""Health-check history, and the connection status each check leaves behind."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Select, delete, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from ump_llm_connections.domain import ConnectionStatus, ErrorKind
from ump_llm_connections.domain.health_rules import (
    PROBE_ERROR,
    Failure,
    HealthState,
    after_check,
)
from ump_llm_connections.store.tables import ConnectionRow, HealthCheckRow

H = HealthCheckRow


class CheckPoint(NamedTuple):
    """What a health window needs of one check."""

    created_at: datetime
    success: bool
    latency_ms: float | None
    error: str | None


def check_points(
    connection_id: uuid.UUID, start: datetime
) -> Select[datetime, bool, float | None, str | None]:
    """The query for a connection's check points since ``start``, oldest first."""
    return (
        select(H.created_at, H.success, H.latency_ms, H.error)
        .where(H.connection_id == connection_id, H.created_at >= start)
        .order_by(H.created_at)
    )


class Scheduled(NamedTuple):
    """What the monitor needs of a connection to know when to probe it."""

    id: uuid.UUID
    is_active: bool
    deactivated_by_health: bool
    health_interval_s: int | None


@dataclass
class Outcome:
    """What a check did to its connection."""

    row: ConnectionRow
    old_status: str
    deactivated: bool = False
    reactivated: bool = False


def _state(row: ConnectionRow) -> HealthState:
    return HealthState(
        is_active=row.is_active,
        status=ConnectionStatus(row.status),
        deactivated_by_health=row.deactivated_by_health,
        auto_reactivate=row.auto_reactivate,
        consecutive_failures=row.consecutive_failures,
        last_error=row.last_error,
    )


def _failure(check: HealthCheckRow) -> Failure | None:
    """How a stored check failed (None: it did not)."""
    if check.success:
        return None
    kind = check.error_kind
    if kind == PROBE_ERROR:
        return PROBE_ERROR
    return ErrorKind(kind) if kind else ErrorKind.server_error  # no kind: a plain failure


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

    async def record(
        self, check: HealthCheckRow, *, threshold: int, enforce: bool
    ) -> Outcome | None:
        """Store a check and apply it to its connection, in one transaction: the rules are
        ``domain.health_rules.after_check``; this only loads, applies and persists."""
        async with self._sessions() as session:
            row = await session.get(ConnectionRow, check.connection_id)
            if row is None:  # deleted while it was being tested
                return None
            session.add(check)
            outcome = Outcome(row=row, old_status=row.status)
            moved = after_check(
                _state(row),
                _failure(check),
                check.error,
                threshold=threshold,
                enforce=enforce,
            )
            new = moved.state
            row.last_tested_at = check.created_at
            row.is_active, row.deactivated_by_health = new.is_active, new.deactivated_by_health
            row.status = new.status.value
            row.consecutive_failures, row.last_error = new.consecutive_failures, new.last_error
            outcome.deactivated, outcome.reactivated = moved.deactivated, moved.reactivated
            if moved.reactivated or moved.deactivated:
                row.updated_at = check.created_at
            try:
                await session.commit()
            except (StaleDataError, IntegrityError):
                await session.rollback()
                if await session.get(ConnectionRow, check.connection_id) is None:
                    return None  # deleted while its check was being recorded
                raise
            return outcome

    async def prune(self, before: datetime) -> int:
        """Delete health checks older than ``before`` (the retention window)."""
        async with self._sessions() as session:
            result = await session.execute(delete(H).where(H.created_at < before))
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def since(self, connection_id: uuid.UUID, start: datetime) -> list[CheckPoint]:
        """The checks of a connection since ``start``, oldest first."""
        async with self._sessions() as session:
            rows = (await session.execute(check_points(connection_id, start))).all()
        return [CheckPoint(*r) for r in rows]

    async def schedule(self) -> list[Scheduled]:
        """What the monitor needs of every connection it may probe, without the keys."""
        C = ConnectionRow
        query = select(C.id, C.is_active, C.deactivated_by_health, C.health_interval_s).where(
            or_(C.is_active.is_(True), C.deactivated_by_health.is_(True))
        )
        async with self._sessions() as session:
            return [Scheduled(*r) for r in (await session.execute(query)).all()]

    async def history(
        self, connection_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[HealthCheckRow], int]:
        where = H.connection_id == connection_id
        query = select(H).where(where).order_by(H.created_at.desc(), H.id.desc())
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(H).where(where))
            rows = (await session.scalars(query.limit(limit).offset(offset))).all()
        return rows, int(total or 0)


MONITOR_LOCK = 0x756D70  # "ump": the PostgreSQL advisory lock held by the monitoring replica
SPOT_LOCK = 0x756D7073  # "umps": held by the replica that reconciles the spot instances


class MonitorLease:
    """Makes one replica at a time the health monitor (or, with ``SPOT_LOCK``, the spot
    instances' reconciler).

    On PostgreSQL a session-level advisory lock, held on a connection of its own for as long as
    the replica lives (a replica that dies releases it with its connection, and another takes
    over on its next try). SQLite serves one process: the lease is always held.
    """

    def __init__(self, engine: AsyncEngine, key: int = MONITOR_LOCK) -> None:
        self._engine = engine
        self._key = key
        self._connection: AsyncConnection | None = None
        self._held = False

    async def hold(self) -> bool:
        """Whether this replica runs the monitor now (taking the lock when it is free)."""
        if self._engine.dialect.name != "postgresql":
            return True
        try:
            if self._connection is None:
                self._connection = await self._engine.connect()
            if self._held:
                await self._connection.execute(text("SELECT 1"))  # still ours?
                return True
            result = await self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            )
            self._held = bool(result.scalar())
            await self._connection.commit()
        except DBAPIError:  # the connection (and with it the lock) is gone: try again later
            await self.release()
        return self._held

    async def release(self) -> None:
        connection, self._connection, self._held = self._connection, None, False
        if connection is not None:
            with contextlib.suppress(DBAPIError):
                await connection.close()
