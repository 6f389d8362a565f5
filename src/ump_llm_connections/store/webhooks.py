"""Webhooks and the log of their deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ump_llm_connections.store.tables import WebhookDeliveryRow, WebhookRow

D = WebhookDeliveryRow


class WebhookStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add(self, row: WebhookRow) -> None:
        async with self._sessions() as session:
            session.add(row)
            await session.commit()

    async def get(self, webhook_id: uuid.UUID) -> WebhookRow | None:
        async with self._sessions() as session:
            return await session.get(WebhookRow, webhook_id)

    async def all(self, *, active_only: bool = False) -> Sequence[WebhookRow]:
        query = select(WebhookRow).order_by(WebhookRow.created_at, WebhookRow.id)
        if active_only:
            query = query.where(WebhookRow.is_active.is_(True))
        async with self._sessions() as session:
            return (await session.scalars(query)).all()

    async def delete(self, webhook_id: uuid.UUID) -> bool:
        """Delete a webhook and (by cascade) its deliveries; False when there was none."""
        async with self._sessions() as session:
            row = await session.get(WebhookRow, webhook_id)
            if row is None:
                return False
            await session.delete(row)
            await session.commit()
            return True

    async def log_delivery(self, row: WebhookDeliveryRow) -> bool:
        """Record one attempt; False when its webhook is gone (deleted while delivering)."""
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
            return True

    async def deliveries(
        self, webhook_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[WebhookDeliveryRow], int]:
        where = D.webhook_id == webhook_id
        query = select(D).where(where).order_by(D.created_at.desc(), D.id.desc())
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(D).where(where))
            rows = (await session.scalars(query.limit(limit).offset(offset))).all()
        return rows, int(total or 0)
