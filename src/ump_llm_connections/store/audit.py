"""The audit log (``llm_audit_log``): appended, searched and pruned; never updated.

Each append is one INSERT in its own short transaction, apart from the change it records (which
has committed by then). Pruning deletes in batches of ``PRUNE_BATCH`` rows, each in its own
transaction, so it never holds a long lock on a large table.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, insert, select

from ump_llm_connections.domain.audit import AuditFilters
from ump_llm_connections.store.engine import Sessions
from ump_llm_connections.store.tables import AuditRow

__all__ = ["PRUNE_BATCH", "AuditRecord", "AuditStore"]

PRUNE_BATCH = 1000

A = AuditRow
AUDIT = AuditRow.metadata.tables[AuditRow.__tablename__]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row to append, as stored (the service has checked and cut every value to fit)."""

    created_at: datetime
    token_id: uuid.UUID | None
    token_name: str | None
    client: str | None
    action: str
    target_type: str | None
    target_id: str | None
    target_name: str | None
    fields: list[str]
    outcome: str


class AuditStore:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def append(self, record: AuditRecord) -> None:
        values = {name: getattr(record, name) for name in AuditRecord.__slots__}
        async with self._sessions() as session:
            await session.execute(insert(AUDIT).values(values))
            await session.commit()

    async def find(
        self, filters: AuditFilters, *, limit: int, offset: int
    ) -> tuple[Sequence[AuditRow], int]:
        """One page of the rows matching ``filters``, newest first, and how many match."""
        where = _conditions(filters)
        query = select(A).where(*where).order_by(A.created_at.desc(), A.id.desc())
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(A).where(*where))
            rows = (await session.scalars(query.limit(limit).offset(offset))).all()
        return rows, int(total or 0)

    async def prune(self, before: datetime) -> int:
        """Delete the rows older than ``before``, a batch per transaction; how many went."""
        pruned = 0
        while True:
            async with self._sessions() as session:
                batch = select(A.id).where(A.created_at < before).order_by(A.id).limit(PRUNE_BATCH)
                ids = list((await session.scalars(batch)).all())
                if not ids:
                    return pruned
                await session.execute(delete(A).where(A.id.in_(ids)))
                await session.commit()
            pruned += len(ids)
            if len(ids) < PRUNE_BATCH:
                return pruned


def _conditions(filters: AuditFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.action_prefix is not None:
        conditions.append(A.action.startswith(filters.action_prefix, autoescape=True))
    elif filters.action is not None:
        conditions.append(A.action == filters.action)
    if filters.token_id is not None:
        conditions.append(A.token_id == filters.token_id)
    if filters.target_type is not None:
        conditions.append(A.target_type == filters.target_type)
    if filters.target_id is not None:
        conditions.append(A.target_id == filters.target_id)
    if filters.outcome is not None:
        conditions.append(A.outcome == filters.outcome.value)
    if filters.since is not None:
        conditions.append(A.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(A.created_at < filters.until)
    return conditions
