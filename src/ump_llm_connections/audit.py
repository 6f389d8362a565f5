"""The audit log: who did what to which target, from where, and which fields it changed.

Routes call ``record`` once the change has happened::

    await audit.record(
        principal, client, AuditAction.connection_update,
        target=AuditTarget(TargetType.connection, row.id, row.name),
        fields=body.model_fields_set,
    )

``fields`` takes names only: anything that is not a plain snake_case field name is dropped
(``domain.audit.field_names``), so a value — a key, a token — passed by mistake is never stored.

A failed write does not fail the request: the change it records has already been made, and
answering with an error would tell the caller it had not. The row is then logged at ERROR
instead, with everything it would have held, so the action is not lost. The write is shielded
from the request's cancellation (a client hanging up after its change still leaves a row).
Old rows are pruned hourly past ``UMP_AUDIT_RETENTION_DAYS``; nothing else deletes or changes one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain.access import AuditEntry, AuditPage, Principal
from ump_llm_connections.domain.audit import (
    AuditAction,
    AuditFilters,
    AuditOutcome,
    AuditTarget,
    field_names,
)
from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.store.audit import AuditRecord, AuditStore

__all__ = ["MAX_AUDIT_PAGE", "Actor", "AuditLog"]

log = logging.getLogger(__name__)

MAX_AUDIT_PAGE = 500
_TEXT = 200  # the columns' sizes
_CLIENT = 64


class AuditLog:
    def __init__(self, store: AuditStore, *, retention: timedelta) -> None:
        self._store = store
        self._retention = retention
        self._writing: set[asyncio.Task[None]] = set()

    async def record(
        self,
        principal: Principal,
        client: str | None,
        action: AuditAction,
        *,
        target: AuditTarget | None = None,
        fields: Iterable[str] = (),
        outcome: AuditOutcome = AuditOutcome.ok,
    ) -> None:
        """Append one row; never raises for a failed write (see the module's docstring)."""
        names, dropped = field_names(fields)
        if dropped:
            log.warning(
                "audit: %d value(s) given as field names of %s were dropped", dropped, action
            )
        record = AuditRecord(
            created_at=utcnow(),
            token_id=principal.token_id,
            token_name=principal.name[:_TEXT],
            client=client[:_CLIENT] if client is not None else None,
            action=action.value,
            target_type=target.type.value if target is not None else None,
            target_id=_text(target.id) if target is not None else None,
            target_name=_text(target.name) if target is not None else None,
            fields=names,
            outcome=outcome.value,
        )
        task = asyncio.ensure_future(self._write(record))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)
        await asyncio.shield(task)

    async def _write(self, record: AuditRecord) -> None:
        try:
            await self._store.append(record)
        except Exception as exc:  # the change is made: keep the row in the log instead
            log.error(
                "audit row not stored (%s): %s %s on %s %s (%s) by %s (token %s) from %s, "
                "fields %s",
                type(exc).__name__,
                record.action,
                record.outcome,
                record.target_type,
                record.target_id,
                record.target_name,
                record.token_name,
                record.token_id,
                record.client,
                ", ".join(record.fields) or "none",
            )

    async def find(self, filters: AuditFilters, *, limit: int, offset: int) -> AuditPage:
        """One page of the log, newest first."""
        if not 1 <= limit <= MAX_AUDIT_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_AUDIT_PAGE}", field="limit")
        if offset < 0:
            raise InvalidInput("offset must be 0 or more", field="offset")
        rows, total = await self._store.find(filters, limit=limit, offset=offset)
        items = [AuditEntry.model_validate(row, from_attributes=True) for row in rows]
        return AuditPage(items=items, total=total, limit=limit, offset=offset)

    async def prune(self) -> None:
        """Delete the rows older than the retention period."""
        pruned = await self._store.prune(utcnow() - self._retention)
        if pruned:
            log.info("pruned %d audit rows older than %d days", pruned, self._retention.days)


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:_TEXT]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a request's changes, from where, and the log they go to (``api/deps.py``)."""

    caller: Principal
    client: str | None
    log: AuditLog

    async def did(
        self,
        action: AuditAction,
        target: AuditTarget | None = None,
        fields: Iterable[str] = (),
    ) -> None:
        await self.log.record(self.caller, self.client, action, target=target, fields=fields)
