"""API tokens: rows hold the token's SHA-256, never the token."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select, update

from ump_llm_connections.store.engine import Sessions
from ump_llm_connections.store.tables import TokenRow

__all__ = ["TokenStore"]


class TokenStore:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def add(self, row: TokenRow) -> None:
        async with self._sessions() as session:
            session.add(row)
            await session.commit()

    async def all(self) -> Sequence[TokenRow]:
        query = select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)
        async with self._sessions() as session:
            return (await session.scalars(query)).all()

    async def get(self, token_id: uuid.UUID) -> TokenRow | None:
        async with self._sessions() as session:
            return await session.get(TokenRow, token_id)

    async def find_by_key_id(self, key_id: str) -> TokenRow | None:
        async with self._sessions() as session:
            return await session.scalar(select(TokenRow).where(TokenRow.key_id == key_id))

    async def revoke(self, token_id: uuid.UUID, now: datetime) -> TokenRow | None:
        """Mark a token revoked (once: a second revoke keeps the first time)."""
        async with self._sessions() as session:
            row = await session.get(TokenRow, token_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = now
                row.updated_at = now
                await session.commit()
            return row

    async def version(self) -> tuple[int, object]:
        """Row count and newest change: what tells a replica to reload its token cache."""
        query = select(func.count(), func.max(TokenRow.updated_at))
        async with self._sessions() as session:
            count, newest = (await session.execute(query)).one()
        return int(count), newest

    async def touch(self, used: Iterable[uuid.UUID], now: datetime) -> None:
        """Record that these tokens were used (batched: not once per request)."""
        ids = list(used)
        if not ids:
            return
        query = update(TokenRow).where(TokenRow.id.in_(ids)).values(last_used_at=now)
        async with self._sessions() as session:
            await session.execute(query)
            await session.commit()
