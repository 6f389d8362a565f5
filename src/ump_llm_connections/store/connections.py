"""The connection repository: every query on ``llm_connections``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import ConnectionFilters, Summary, name_key
from ump_llm_connections.errors import Conflict
from ump_llm_connections.store.health import CheckPoint, check_points
from ump_llm_connections.store.tables import (
    ConnectionRow,
    ConnectionTagRow,
    NameRow,
    PoolRow,
    WebhookRow,
)

C = ConnectionRow


def _by_name(name: str) -> Select[ConnectionRow]:
    return (
        select(C)
        .join(NameRow, NameRow.connection_id == C.id)
        .where(NameRow.name_key == name_key(name))
    )


T = ConnectionTagRow
# The columns llm_connection_tags copies from llm_connections (migration 0008's triggers).
COPIED = frozenset(
    {
        "name",
        "connection_type",
        "use_in_livekit",
        "use_in_mcp",
        "use_in_automation",
        "is_active",
        "status",
    }
)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def name_taken(name: str) -> Conflict:
    return Conflict(f"a connection or pool named '{name}' already exists", field="name")


class ConnectionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect

    async def add(self, row: ConnectionRow) -> ConnectionRow:
        """Insert a connection and claim its name in ``llm_names``: the database refuses a name
        that a connection or pool already holds, whatever its case (409, even in a race)."""
        async with self._sessions() as session:
            session.add(row)
            await session.flush()  # the connection row before the row naming it
            session.add(NameRow(name_key=name_key(row.name), connection_id=row.id))
            try:
                await session.commit()
            except IntegrityError:
                raise name_taken(row.name) from None
            return row

    async def get(self, connection_id: uuid.UUID) -> ConnectionRow | None:
        async with self._sessions() as session:
            return await session.get(C, connection_id)

    async def get_by_name(self, name: str) -> ConnectionRow | None:
        async with self._sessions() as session:
            return await session.scalar(_by_name(name))

    async def get_with_checks(
        self, ref: uuid.UUID | str, start: datetime
    ) -> tuple[ConnectionRow, list[CheckPoint]] | None:
        """A connection by id or name and its health checks since ``start``, in one session
        (a session costs a database round trip or two of its own: a read of a connection's
        page is the most frequent read there is)."""
        async with self._sessions() as session:
            if isinstance(ref, uuid.UUID):
                row = await session.get(C, ref)
            else:
                row = await session.scalar(_by_name(ref))
            if row is None:
                return None
            checks = (await session.execute(check_points(row.id, start))).all()
        return row, [CheckPoint(*c) for c in checks]

    async def update(
        self, connection_id: uuid.UUID, mutate: Callable[[ConnectionRow], None]
    ) -> ConnectionRow | None:
        """Load, change with ``mutate`` (which may raise to abort) and commit: one transaction."""
        async with self._sessions() as session:
            row = await session.get(C, connection_id, with_for_update=self._dialect != "sqlite")
            if row is None:
                return None
            old_key = name_key(row.name)
            mutate(row)
            row.updated_at = utcnow()
            new_key = name_key(row.name)
            try:
                if new_key != old_key:  # the name moves in the same transaction
                    await session.execute(
                        update(NameRow)
                        .where(NameRow.connection_id == row.id)
                        .values(name_key=new_key)
                    )
                await session.commit()
            except IntegrityError:
                raise name_taken(row.name) from None
            return row

    async def delete(self, connection_id: uuid.UUID) -> bool:
        async with self._sessions() as session:
            row = await session.get(C, connection_id)
            if row is None:
                return False
            await session.delete(row)
            await session.commit()
            return True

    async def find(
        self,
        filters: ConnectionFilters,
        *,
        sort: str,
        limit: int,
        offset: int,
        visible: Visibility = None,
    ) -> tuple[Sequence[ConnectionRow], int]:
        field = sort.lstrip("-")
        row_where = [*self._row_where(filters), *visible_where(visible)]
        if filters.tags:
            # Counted from llm_connection_tags alone unless q or owner need the connection row;
            # a page sorted by a copied column is read in that table's index order.
            tag_where = self._tag_where(filters)
            count = select(func.count()).select_from(T).where(*tag_where)
            if row_where:
                count = count.join(C, C.id == T.connection_id).where(*row_where)
            query = select(C).join(T, T.connection_id == C.id).where(*tag_where, *row_where)
            table: type[ConnectionRow | ConnectionTagRow] = T if field in COPIED else C
        else:
            where = [*self._column_where(filters, C), *row_where]
            count = select(func.count()).select_from(C).where(*where)
            query = select(C).where(*where)
            table = C
        key = T.connection_id if table is T else C.id
        column = getattr(table, field)
        order = column.desc() if sort.startswith("-") else column.asc()
        query = query.order_by(order, table.name, key).limit(limit).offset(offset)
        async with self._sessions() as session:
            total = await session.scalar(count)
            rows = (await session.scalars(query)).all()
        return rows, int(total or 0)

    async def summary(self, *, visible: Visibility = None) -> Summary:
        def count(*conditions: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)

        ready = (C.is_active.is_(True), C.status != "error")
        query = select(
            func.count(),
            count(C.is_active.is_(True)),
            count(C.use_in_livekit.is_(True), *ready),
            count(C.use_in_mcp.is_(True), *ready),
            count(C.use_in_automation.is_(True), *ready),
            count(C.status == "error"),
        ).select_from(C)
        where = visible_where(visible)
        if where:
            query = query.where(*where)
        async with self._sessions() as session:
            row = (await session.execute(query)).one()
        total, active, livekit, mcp, automation, in_error = (int(v) for v in row)
        return Summary(
            total=total,
            active=active,
            livekit_ready=livekit,
            mcp_ready=mcp,
            automation_ready=automation,
            in_error=in_error,
        )

    async def all(self) -> Sequence[ConnectionRow]:
        async with self._sessions() as session:
            return (await session.scalars(select(C))).all()

    async def names(self, *, visible: Visibility = None) -> dict[uuid.UUID, str]:
        query = select(C.id, C.name).where(*visible_where(visible))
        async with self._sessions() as session:
            return {row.id: row.name for row in (await session.execute(query))}

    async def version(self) -> tuple[int, object]:
        """Changes whenever a connection is added, changed or removed (by any process)."""
        # Two scalar subqueries: each is answered from an index (max from ix_..._updated), where
        # one SELECT of both read every row.
        count = select(func.count()).select_from(C).scalar_subquery()
        latest = select(func.max(C.updated_at)).scalar_subquery()
        async with self._sessions() as session:
            total, newest = (await session.execute(select(count, latest))).one()
            return int(total), newest

    async def encrypted_key_ids(self) -> list[str]:
        """Distinct key-id prefixes of the stored API keys (``v1.<key id>.``)."""
        prefix = func.substr(C.api_key_encrypted, 1, 16)
        async with self._sessions() as session:
            rows = await session.scalars(
                select(prefix).where(C.api_key_encrypted.is_not(None)).distinct()
            )
            return [value.split(".")[1] for value in rows.all()]

    async def extra_headers(self) -> list[tuple[uuid.UUID, dict[str, str]]]:
        """The stored ``extra_headers`` of every connection that has some."""
        async with self._sessions() as session:
            rows = await session.execute(select(C.id, C.extra_headers))
            return [(connection_id, headers) for connection_id, headers in rows if headers]

    async def set_extra_headers(self, connection_id: uuid.UUID, headers: dict[str, str]) -> None:
        """Replace the stored headers, nothing else (``updated_at`` stays: no one edited it)."""
        async with self._sessions() as session:
            await session.execute(
                update(C).where(C.id == connection_id).values(extra_headers=headers)
            )
            await session.commit()

    @staticmethod
    def _column_where(
        f: ConnectionFilters, table: type[ConnectionRow | ConnectionTagRow]
    ) -> list[ColumnElement[bool]]:
        """The filters on columns llm_connection_tags holds a copy of, on ``table``."""
        return [
            getattr(table, field) == value
            for field, value in (
                ("connection_type", f.connection_type),
                ("use_in_livekit", f.use_in_livekit),
                ("use_in_mcp", f.use_in_mcp),
                ("use_in_automation", f.use_in_automation),
                ("is_active", f.is_active),
                ("status", f.status),
            )
            if value is not None
        ]

    def _tag_where(self, f: ConnectionFilters) -> list[ColumnElement[bool]]:
        """On llm_connection_tags: the first tag and the copied columns; every further tag is
        another row of the same connection (all tags must match)."""
        first, *more = f.tags
        where = [T.tag == first, *self._column_where(f, T)]
        for tag in more:
            other = aliased(T)
            where.append(exists().where(other.tag == tag, other.connection_id == T.connection_id))
        return where

    @staticmethod
    def _row_where(f: ConnectionFilters) -> list[ColumnElement[bool]]:
        """The filters only llm_connections answers: owner and the text search."""
        where: list[ColumnElement[bool]] = []
        if f.owner is not None:
            where.append(C.owner == f.owner)
        if f.q:
            pattern = f"%{_like_escape(f.q.lower())}%"
            where.append(
                or_(
                    func.lower(C.name).like(pattern, escape="\\"),
                    func.lower(C.description).like(pattern, escape="\\"),
                    func.lower(C.model_name).like(pattern, escape="\\"),
                )
            )
        return where


Visibility = tuple[str | None, str | None] | None
"""What a member may see: rows it owns (``owner``) or shared with its team; None: everything."""


def visible_where(
    visible: Visibility, table: type[ConnectionRow] | type[PoolRow] | type[WebhookRow] = C
) -> list[ColumnElement[bool]]:
    """The rows of ``table`` (connections by default) a caller with this visibility sees."""
    if visible is None:
        return []
    owner, team = visible
    seen = [table.owner == owner] if owner is not None else []
    if team is not None:
        seen.append(table.team == team)
    return [or_(*seen)] if seen else [false()]
