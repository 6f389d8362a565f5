"""One namespace for the names the gateway resolves: ``llm_names``, keyed by the name's NFKC
case-folded form, shared by connections and pools and enforced by the database on both backends.

Names become unique across owners and across connections and pools. Existing rows whose names
would clash are not refused: the oldest row (by created_at, then connections before pools, then
id) keeps its name, and each later one is renamed to ``<name> ~<first 8 hex digits of its id>``.
A name that parses as a UUID (it would shadow ids) is renamed the same way. Every rename is
logged as a warning. Names the new rules refuse for other reasons ('/', control characters,
reserved words) are kept — they still resolve through the gateway and by id — and are listed in
a warning, to be renamed by hand.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import logging
import unicodedata
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("ump_llm_connections.migrations")

# Frozen copies of the rules at this revision (domain.connections may change after it).
RESERVED = frozenset(
    {
        "summary",
        "test",
        "health",
        "health-checks",
        "activate",
        "deactivate",
        "models",
        "usage",
        "stats",
        ".",
        "..",
    }
)
MAX_NAME = 200

connections = sa.table(
    "llm_connections",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
pools = sa.table(
    "llm_pools",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
names = sa.table(
    "llm_names",
    sa.column("name_key", sa.Text()),
    sa.column("connection_id", sa.Uuid()),
    sa.column("pool_id", sa.Uuid()),
)


def key_of(name: str) -> str:
    if name.isascii():
        return name.strip().lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).strip()


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _sort_time(value: datetime | None) -> datetime:
    if value is None:
        return datetime.min.replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def upgrade() -> None:
    op.create_table(
        "llm_names",
        sa.Column("name_key", sa.Text(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=True),
        sa.Column("pool_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["llm_connections.id"],
            name="fk_llm_names_connection_id_llm_connections",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pool_id"],
            ["llm_pools.id"],
            name="fk_llm_names_pool_id_llm_pools",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "(connection_id IS NULL) <> (pool_id IS NULL)", name="ck_llm_names_one_owner"
        ),
        sa.PrimaryKeyConstraint("name_key", name="pk_llm_names"),
        sa.UniqueConstraint("connection_id", name="uq_llm_names_connection_id"),
        sa.UniqueConstraint("pool_id", name="uq_llm_names_pool_id"),
    )
    if not context.is_offline_mode():  # ``migrate --sql`` writes a fresh database's script
        _backfill(op.get_bind())
    op.drop_index("uq_llm_connections_owner_name", table_name="llm_connections")
    op.drop_index("uq_llm_pools_name", table_name="llm_pools")


def _backfill(bind: sa.Connection) -> None:
    rows: list[tuple[datetime, int, uuid.UUID, str]] = []
    for kind, table in ((0, connections), (1, pools)):
        for row_id, name, created in bind.execute(
            sa.select(table.c.id, table.c.name, table.c.created_at)
        ):
            rows.append((_sort_time(created), kind, row_id, name))
    rows.sort()  # the oldest keeps a contested name
    taken = {key_of(name) for *_, name in rows}
    claimed: set[str] = set()
    refused: list[str] = []
    now = datetime.now(UTC)
    for _, kind, row_id, name in rows:
        key = key_of(name)
        if key in claimed or _is_uuid(name) or _is_uuid(key):
            name, key = _rename(name, row_id, taken)
            table = connections if kind == 0 else pools
            bind.execute(
                table.update().where(table.c.id == row_id).values(name=name, updated_at=now)
            )
        if not name.isprintable() or "/" in name or key in RESERVED:
            refused.append(f"{name!r} ({'connection' if kind == 0 else 'pool'} {row_id})")
        claimed.add(key)
        taken.add(key)
        owner = {"connection_id": row_id} if kind == 0 else {"pool_id": row_id}
        bind.execute(names.insert().values(name_key=key, **owner))
    if refused:
        log.warning(
            "names kept as they are but refused from now on (rename them): %s",
            ", ".join(refused),
        )


def _rename(name: str, row_id: uuid.UUID, taken: set[str]) -> tuple[str, str]:
    suffix, n = f" ~{row_id.hex[:8]}", 1
    while True:  # ends: each round tries a new suffix and ``taken`` is finite
        new = name[: MAX_NAME - len(suffix)].strip() + suffix
        key = key_of(new)
        if key not in taken:
            log.warning(
                "renamed %r to %r (id %s): its name was taken or looked like an id",
                name,
                new,
                row_id,
            )
            return new, key
        n += 1
        suffix = f" ~{row_id.hex[:8]}-{n}"


def downgrade() -> None:
    op.create_index("uq_llm_pools_name", "llm_pools", [sa.text("lower(name)")], unique=True)
    op.create_index(
        "uq_llm_connections_owner_name",
        "llm_connections",
        [sa.text("coalesce(owner, '')"), sa.text("lower(name)")],
        unique=True,
    )
    op.drop_table("llm_names")
