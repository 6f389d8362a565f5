"""``llm_connection_tags``: one row per connection and tag, kept by the database, for the tag
filters of the registry list.

Counting "flag and tag" over ``llm_connections`` checked the JSON tags of every flagged row
(about 50,000 of 100,000 in the registry benchmark: 130 ms on SQLite). The side table holds, for
each connection and each of its tags, a copy of the columns the list filters on (name, type, the
three integration flags, is_active, status), so that a count is one index range and a page is 50
index entries joined back to their connections.

Triggers on ``llm_connections`` keep it right whoever writes: the registry, the health store's
bulk status updates, raw SQL. AFTER INSERT adds the rows; AFTER UPDATE of ``tags`` replaces them,
AFTER UPDATE of a copied column updates the copies; a deleted connection takes its rows with it
(ON DELETE CASCADE, and on SQLite a trigger too, for connections opened without
``PRAGMA foreign_keys=ON`` such as the sqlite3 shell's). Only string elements of a JSON array
are tags, each once.

Beware on SQLite: a later migration that rebuilds ``llm_connections`` (``batch_alter_table``
copying the table) drops these triggers with the old table; it must create them again
(``SQLITE_TRIGGERS`` below) and refill the table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

# ruff: noqa: S608 - the SQL below is built from this module's constant identifiers, no input

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "llm_connection_tags"
COPIED = (
    "name",
    "connection_type",
    "use_in_livekit",
    "use_in_mcp",
    "use_in_automation",
    "is_active",
    "status",
)
COLUMNS = ", ".join(("tag", "connection_id", *COPIED))
# Index (name) -> columns. Every list query with a tag filters on ``tag`` first and pages by
# (name, id); a flag filter narrows to one index range. ``is_active`` last: "ready for LiveKit"
# (flag and is_active) is counted from the index alone, and the page order is kept.
INDEXES = {
    f"ix_llm_connection_tags_{name}": ["tag", *flag, "name", "connection_id", "is_active"]
    for name, flag in (
        ("livekit", ["use_in_livekit"]),
        ("mcp", ["use_in_mcp"]),
        ("automation", ["use_in_automation"]),
        ("name", []),
    )
} | {"ix_llm_connection_tags_connection": ["connection_id"]}  # the triggers and the cascade


def _sqlite_rows(row: str, scan: str = "") -> str:
    """The side rows of the connection ``row``: NEW, or the alias of ``scan`` (a FROM item)."""
    copies = ", ".join(f"{row}.{c}" for c in COPIED)
    tags = (
        f"CASE WHEN json_valid({row}.tags) THEN "
        f"CASE WHEN json_type({row}.tags) = 'array' THEN {row}.tags END END"
    )
    return (
        f"SELECT DISTINCT j.value, {row}.id, {copies} "
        f"FROM {scan}json_each({tags}) AS j WHERE j.type = 'text'"
    )


_SQLITE_SET = ", ".join(f"{c} = NEW.{c}" for c in COPIED)
_SQLITE_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in COPIED)
SQLITE_TRIGGERS = {
    "llm_connection_tags_insert": f"""
        CREATE TRIGGER llm_connection_tags_insert AFTER INSERT ON llm_connections
        BEGIN
            INSERT INTO {TABLE} ({COLUMNS}) {_sqlite_rows("NEW")};
        END""",
    "llm_connection_tags_retag": f"""
        CREATE TRIGGER llm_connection_tags_retag AFTER UPDATE OF tags ON llm_connections
        WHEN OLD.tags IS NOT NEW.tags
        BEGIN
            DELETE FROM {TABLE} WHERE connection_id = OLD.id;
            INSERT INTO {TABLE} ({COLUMNS}) {_sqlite_rows("NEW")};
        END""",
    "llm_connection_tags_copy": f"""
        CREATE TRIGGER llm_connection_tags_copy
        AFTER UPDATE OF {", ".join(COPIED)} ON llm_connections
        WHEN OLD.tags IS NEW.tags AND ({_SQLITE_CHANGED})
        BEGIN
            UPDATE {TABLE} SET {_SQLITE_SET} WHERE connection_id = NEW.id;
        END""",
    "llm_connection_tags_delete": f"""
        CREATE TRIGGER llm_connection_tags_delete AFTER DELETE ON llm_connections
        BEGIN
            DELETE FROM {TABLE} WHERE connection_id = OLD.id;
        END""",
}


def _pg_rows(row: str, scan: str = "") -> str:
    copies = ", ".join(f"{row}.{c}" for c in COPIED)
    return (
        f"SELECT DISTINCT e.value #>> '{{}}', {row}.id, {copies} "
        f"FROM {scan}jsonb_array_elements(CASE WHEN jsonb_typeof({row}.tags) = 'array' "
        f"THEN {row}.tags ELSE '[]'::jsonb END) AS e(value) "
        "WHERE jsonb_typeof(e.value) = 'string'"
    )


_PG_SET = ", ".join(f"{c} = NEW.{c}" for c in COPIED)
_PG_OLD = ", ".join(f"OLD.{c}" for c in ("tags", *COPIED))
_PG_NEW = ", ".join(f"NEW.{c}" for c in ("tags", *COPIED))
PG_FUNCTION = f"""
    CREATE FUNCTION llm_connection_tags_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            IF OLD.tags IS NOT DISTINCT FROM NEW.tags THEN
                UPDATE {TABLE} SET {_PG_SET} WHERE connection_id = NEW.id;
                RETURN NULL;
            END IF;
            DELETE FROM {TABLE} WHERE connection_id = OLD.id;
        END IF;
        INSERT INTO {TABLE} ({COLUMNS}) {_pg_rows("NEW")};
        RETURN NULL;
    END
    $$"""
PG_TRIGGERS = {
    "llm_connection_tags_insert": """
        CREATE TRIGGER llm_connection_tags_insert AFTER INSERT ON llm_connections
        FOR EACH ROW EXECUTE FUNCTION llm_connection_tags_sync()""",
    "llm_connection_tags_update": f"""
        CREATE TRIGGER llm_connection_tags_update
        AFTER UPDATE OF {", ".join(("tags", *COPIED))} ON llm_connections
        FOR EACH ROW WHEN (({_PG_OLD}) IS DISTINCT FROM ({_PG_NEW}))
        EXECUTE FUNCTION llm_connection_tags_sync()""",
}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("connection_type", sa.String(32), nullable=False),
        sa.Column("use_in_livekit", sa.Boolean(), nullable=False),
        sa.Column("use_in_mcp", sa.Boolean(), nullable=False),
        sa.Column("use_in_automation", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["llm_connections.id"],
            name="fk_llm_connection_tags_connection_id_llm_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tag", "connection_id", name="pk_llm_connection_tags"),
        sqlite_with_rowid=False,
    )
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    rows = (_sqlite_rows if sqlite else _pg_rows)("c", scan="llm_connections AS c, ")
    # The backfill before the indexes: one sort per index instead of a b-tree insert per row.
    _execute(f"INSERT INTO {TABLE} ({COLUMNS}) {rows}")
    for name, columns in INDEXES.items():
        op.create_index(name, TABLE, columns)
    if sqlite:
        for sql in SQLITE_TRIGGERS.values():
            _execute(sql)
    else:
        _execute(PG_FUNCTION)
        for sql in PG_TRIGGERS.values():
            _execute(sql)
    _execute(f"ANALYZE {TABLE}")  # the planner must know the new indexes at once


def _execute(sql: str) -> None:
    """Run raw SQL as it is; written out instead by ``ump-llm migrate --sql`` (offline)."""
    if context.is_offline_mode():
        op.execute(sql)
    else:
        op.get_bind().exec_driver_sql(sql)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name in PG_TRIGGERS:
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON llm_connections")
        bind.exec_driver_sql("DROP FUNCTION IF EXISTS llm_connection_tags_sync()")
    op.drop_table(TABLE)
