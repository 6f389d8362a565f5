"""Usage totalled in the database: the reports read grouped sums, never the rows themselves.

A report over a window groups the window's rows once per dimension (time bucket, connection,
pool, source) and per latency bin, so what comes back is bounded by the groups, not by the calls:
a month of a million calls is a few thousand group rows. Latencies are binned on a log scale
(``LATENCY_BINS_PER_E`` bins per factor e, about 2 % wide), with each bin's sum, so percentiles
are read from the merged bins (``domain.usage.Tally``) to within a bin's width, and exactly
where a bin holds one value.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import Integer, Select, case, cast, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Uuid

from ump_llm_connections.domain import LatencyGroup, TtftGroup, UsageScope
from ump_llm_connections.domain.usage import LATENCY_BINS_PER_E, MIN_BINNED_MS
from ump_llm_connections.store.tables import UsageRow

__all__ = ["Dimension", "UsageGroups"]

U = UsageRow
Dimension = Literal["bucket", "connection", "pool", "source", "all"]


class _Seconds(FunctionElement[int]):
    """A timestamp as whole seconds since the epoch (UTC)."""

    type = Integer()
    inherit_cache = True


@compiles(_Seconds, "sqlite")
def _seconds_sqlite(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps the UTC time as text; strftime reads its fractional seconds too
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(_Seconds, "postgresql")
def _seconds_postgresql(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(floor(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


def _bin(column: Any) -> ColumnElement[int]:
    """The log-scale bin of a latency (null stays null)."""
    floored = case((column < MIN_BINNED_MS, MIN_BINNED_MS), else_=column)
    return cast(func.floor(func.ln(floored) * LATENCY_BINS_PER_E), Integer)


class UsageGroups:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def latency(self, scope: UsageScope, dimension: Dimension) -> list[LatencyGroup]:
        """The scope's calls grouped by ``dimension`` and latency bin, with their sums."""
        key = self._key(scope, dimension)
        lat = _bin(U.latency_ms)
        query = self._scoped(
            select(
                key,
                lat,
                func.count(),
                func.sum(case((U.success, 1), else_=0)),
                func.sum(U.prompt_tokens),
                func.sum(U.completion_tokens),
                func.sum(U.cache_read_tokens),
                func.sum(U.cache_write_tokens),
                func.sum(U.reasoning_tokens),
                func.sum(U.cost),
                func.sum(U.latency_ms),
            ),
            scope,
            dimension,
        ).group_by(key, lat)
        rows = await self._rows(query)
        return [
            LatencyGroup(
                key,
                bin_,
                int(n),
                int(ok or 0),
                int(prompt or 0),
                int(completion or 0),
                int(read or 0),
                int(write or 0),
                int(reasoning or 0),
                None if cost is None else float(cost),
                float(latency or 0),
            )
            for key, bin_, n, ok, prompt, completion, read, write, reasoning, cost, latency in rows
        ]

    async def ttft(self, scope: UsageScope, dimension: Dimension) -> list[TtftGroup]:
        """The scope's streamed calls grouped by ``dimension`` and time-to-first-token bin."""
        key = self._key(scope, dimension)
        ttft = _bin(U.ttft_ms)
        query = self._scoped(select(key, ttft, func.count(), func.sum(U.ttft_ms)), scope, dimension)
        query = query.where(U.ttft_ms.is_not(None)).group_by(key, ttft)
        rows = await self._rows(query)
        return [TtftGroup(key, bin_, int(n), float(total)) for key, bin_, n, total in rows]

    async def _rows(self, query: Select[Any]) -> Sequence[Any]:
        """Core rows, not the ORM's: its per-row loading cost more than the query here."""
        async with self._sessions() as session:
            connection = await session.connection()
            found: Sequence[Any] = (await connection.execute(query)).all()
            return found

    @staticmethod
    def _key(scope: UsageScope, dimension: Dimension) -> Any:
        if dimension == "bucket":
            return (_Seconds(U.created_at) - scope.first_s) // scope.step_s
        if dimension == "connection":
            return U.connection_id
        if dimension == "pool":
            return U.pool_id
        if dimension == "source":
            return U.source
        return literal(0)

    def _scoped(self, query: Select[Any], scope: UsageScope, dimension: Dimension) -> Select[Any]:
        query = query.where(U.created_at >= scope.start)
        if scope.connection_id is not None:
            query = query.where(U.connection_id == scope.connection_id)
        if scope.pool_id is not None:
            query = query.where(U.pool_id == scope.pool_id)
        if scope.connection_ids is not None:
            query = query.where(_OneOf(U.connection_id, scope.connection_ids))
        if dimension == "pool":
            query = query.where(U.pool_id.is_not(None))
        return query


class _OneOf(ColumnElement[bool]):
    """``column`` is one of ``ids``: one array parameter on PostgreSQL (no limit on how many),
    a JSON array read by ``json_each`` on SQLite."""

    inherit_cache = False

    def __init__(self, column: Any, ids: Sequence[uuid.UUID]) -> None:
        self.column = column
        self.ids = list(ids)
        super().__init__()


@compiles(_OneOf, "postgresql")
def _one_of_postgresql(element: _OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    ids = literal(element.ids, ARRAY(Uuid()))
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(ids, **kw)})"


@compiles(_OneOf, "sqlite")
def _one_of_sqlite(element: _OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    text = "[" + ",".join(f'"{i.hex}"' for i in element.ids) + "]"
    column, ids = compiler.process(element.column, **kw), compiler.process(literal(text), **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"  # noqa: S608 - ids: a parameter
