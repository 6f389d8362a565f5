"""The encrypted columns, read and rewritten for key rotation.

Those are ``llm_connections.api_key_encrypted``, every value of ``llm_connections.extra_headers``
and ``llm_webhooks.secret_encrypted``. A rewrite touches nothing else: ``updated_at`` stays (the
plaintext is the same, so the gateway has nothing to reload).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ump_llm_connections.store.engine import Sessions
from ump_llm_connections.store.tables import ConnectionRow, WebhookRow

__all__ = ["ConnectionSecrets", "RotationStore", "WebhookSecret"]

C = ConnectionRow
W = WebhookRow


@dataclass(frozen=True, slots=True)
class ConnectionSecrets:
    id: uuid.UUID
    api_key: str | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    id: uuid.UUID
    secret: str


class RotationStore:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def connections(self) -> list[ConnectionSecrets]:
        """The key and headers of every connection holding either."""
        query = select(C.id, C.api_key_encrypted, C.extra_headers).order_by(C.id)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            ConnectionSecrets(row_id, key, dict(headers or {}))
            for row_id, key, headers in rows
            if key is not None or headers
        ]

    async def webhooks(self) -> list[WebhookSecret]:
        async with self._sessions() as session:
            rows = (await session.execute(select(W.id, W.secret_encrypted).order_by(W.id))).all()
        return [WebhookSecret(row_id, secret) for row_id, secret in rows]

    async def reseal_connections(
        self,
        ids: Sequence[uuid.UUID],
        reseal: Callable[[ConnectionSecrets], ConnectionSecrets | None],
    ) -> int:
        """Rewrite these connections' secrets as ``reseal`` says (None: leave the row), in one
        transaction; how many rows changed."""
        async with self._sessions() as session:
            await _lock(session, C.api_key_encrypted, ids)
            query = select(C.id, C.api_key_encrypted, C.extra_headers).where(C.id.in_(ids))
            changed = 0
            for row_id, key, headers in (await session.execute(query)).all():
                new = reseal(ConnectionSecrets(row_id, key, dict(headers or {})))
                if new is not None:
                    await session.execute(
                        update(C)
                        .where(C.id == row_id)
                        .values(api_key_encrypted=new.api_key, extra_headers=new.headers)
                        .execution_options(synchronize_session=False)
                    )
                    changed += 1
            await session.commit()
        return changed

    async def reseal_webhooks(
        self, ids: Sequence[uuid.UUID], reseal: Callable[[WebhookSecret], WebhookSecret | None]
    ) -> int:
        """As ``reseal_connections``, for webhook secrets."""
        async with self._sessions() as session:
            await _lock(session, W.secret_encrypted, ids)
            query = select(W.id, W.secret_encrypted).where(W.id.in_(ids))
            changed = 0
            for row_id, secret in (await session.execute(query)).all():
                new = reseal(WebhookSecret(row_id, secret))
                if new is not None:
                    await session.execute(
                        update(W)
                        .where(W.id == row_id)
                        .values(secret_encrypted=new.secret)
                        .execution_options(synchronize_session=False)
                    )
                    changed += 1
            await session.commit()
        return changed


async def _lock(
    session: AsyncSession, column: InstrumentedAttribute[Any], ids: Sequence[uuid.UUID]
) -> None:
    """Start the transaction with a write that changes nothing, so no edit made through the API
    can land between the read that follows and the rewrite (which would put back the old
    secret): PostgreSQL locks these rows until the commit, SQLite takes its write lock. A
    ``SELECT … FOR UPDATE`` would not do on SQLite, whose driver begins a transaction only at
    the first write."""
    table = column.class_
    await session.execute(
        update(table)
        .where(table.id.in_(ids))
        .values({column: column})
        .execution_options(synchronize_session=False)
    )
