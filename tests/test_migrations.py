"""The Alembic migrations, on both backends: the tables, their indexes, and data carried over."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import Database
from ump_llm_connections.domain import name_key
from ump_llm_connections.store import migrate
from ump_llm_connections.store.engine import create_engine
from ump_llm_connections.store.tables import Base, JsonDoc

TABLES = {
    "llm_connections",
    "llm_connection_usage",
    "llm_connection_health_checks",
    "llm_pools",
    "llm_pool_members",
    "llm_webhooks",
    "llm_webhook_deliveries",
    "llm_names",
    "llm_connection_tags",
    "llm_api_tokens",
    "llm_audit_log",
    "llm_spot_instances",
}


async def _schema(db: Database) -> tuple[set[str], dict[str, set[str]]]:
    engine = create_engine(db.url)

    def read(conn: AsyncConnection) -> tuple[set[str], dict[str, set[str]]]:
        inspector = inspect(conn)
        tables = set(inspector.get_table_names()) - {"alembic_version"}
        columns = {t: {c["name"] for c in inspector.get_columns(t)} for t in tables}
        return tables, columns

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(read)  # type: ignore[arg-type]
    finally:
        await engine.dispose()


def _indexes(db: Database) -> dict[str, set[str]]:
    """Index names per table from the catalog (SQLAlchemy cannot reflect expression indexes)."""
    sql = (
        "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'"
        if db.backend == "sqlite"
        else "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"
    )
    found: dict[str, set[str]] = {}
    for table, name in db.query(sql):
        found.setdefault(table, set()).add(name)
    return found


async def _migrate(db: Database, action: str, revision: str) -> None:
    engine = create_engine(db.url)
    try:
        await getattr(migrate, action)(engine, revision)
    finally:
        await engine.dispose()


def test_upgrade_creates_the_schema_the_code_uses(fresh_database: Database) -> None:
    asyncio.run(_migrate(fresh_database, "upgrade", "head"))
    tables, columns = asyncio.run(_schema(fresh_database))
    indexes = _indexes(fresh_database)
    assert tables == TABLES
    for table in TABLES:
        assert columns[table] == set(Base.metadata.tables[table].columns.keys()), table
    assert "api_key" not in columns["llm_connections"]
    expected = {
        "ix_llm_connections_type_active",
        "ix_llm_connections_livekit",
        "ix_llm_connections_mcp",
        "ix_llm_connections_automation",
        "ix_llm_connections_status",
        "ix_llm_connections_name",
        "ix_llm_connections_updated",  # the gateway's change check must not read every row
    }
    if fresh_database.backend == "postgresql":
        expected.add("ix_llm_connections_tags")
    assert expected <= indexes["llm_connections"]
    assert {
        "ix_llm_connection_tags_livekit",
        "ix_llm_connection_tags_mcp",
        "ix_llm_connection_tags_automation",
        "ix_llm_connection_tags_name",
        "ix_llm_connection_tags_connection",
    } <= indexes["llm_connection_tags"]
    assert "ix_llm_connection_usage_conn_time" in indexes["llm_connection_usage"]
    assert "ix_llm_connection_health_checks_conn_time" in indexes["llm_connection_health_checks"]
    # Names are unique through llm_names alone; the per-owner lower() indexes are gone.
    assert "uq_llm_connections_owner_name" not in indexes["llm_connections"]
    assert "uq_llm_pools_name" not in indexes.get("llm_pools", set())


def test_upgrade_is_idempotent_and_downgrade_removes_everything(fresh_database: Database) -> None:
    asyncio.run(_migrate(fresh_database, "upgrade", "head"))
    asyncio.run(_migrate(fresh_database, "upgrade", "head"))
    asyncio.run(_migrate(fresh_database, "downgrade", "base"))
    tables, _ = asyncio.run(_schema(fresh_database))
    assert tables == set()


def test_head_constant_is_alembics_head() -> None:
    """The server skips Alembic when the database is at HEAD: HEAD must be the real head."""
    from alembic.script import ScriptDirectory

    from ump_llm_connections.store.migrate import HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


def test_a_server_at_head_does_not_load_alembic(fresh_database: Database) -> None:
    asyncio.run(_migrate(fresh_database, "upgrade", "head"))
    script = (
        "import asyncio, sys\n"
        "from ump_llm_connections.store import migrate\n"
        "from ump_llm_connections.store.engine import create_engine\n"
        f"engine = create_engine({fresh_database.url!r})\n"
        "asyncio.run(migrate.upgrade(engine))\n"
        "print('alembic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


CONNECTIONS = sa.table(
    "llm_connections",
    *(
        sa.column(name, type_)
        for name, type_ in (
            ("id", sa.Uuid()),
            ("name", sa.String()),
            ("owner", sa.String()),
            ("description", sa.Text()),
            ("connection_type", sa.String()),
            ("api_format", sa.String()),
            ("base_url", sa.String()),
            ("model_name", sa.String()),
            ("extra_headers", JsonDoc),
            ("timeout", sa.Float()),
            ("max_retries", sa.Integer()),
            ("use_in_livekit", sa.Boolean()),
            ("use_in_mcp", sa.Boolean()),
            ("use_in_automation", sa.Boolean()),
            ("is_active", sa.Boolean()),
            ("status", sa.String()),
            ("consecutive_failures", sa.Integer()),
            ("tags", JsonDoc),
            ("priority", sa.Integer()),
            ("weight", sa.Integer()),
            ("created_at", sa.DateTime(timezone=True)),
            ("updated_at", sa.DateTime(timezone=True)),
        )
    ),
)
POOLS = sa.table(
    "llm_pools",
    *(
        sa.column(name, type_)
        for name, type_ in (
            ("id", sa.Uuid()),
            ("name", sa.String()),
            ("description", sa.Text()),
            ("strategy", sa.String()),
            ("created_at", sa.DateTime(timezone=True)),
            ("updated_at", sa.DateTime(timezone=True)),
        )
    ),
)


def _connection(name: str, owner: str | None, created: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "name": name,
        "owner": owner,
        "description": "",
        "connection_type": "local",
        "api_format": "ollama",
        "base_url": "http://localhost:11434",
        "model_name": "m",
        "extra_headers": {},
        "timeout": 60.0,
        "max_retries": 2,
        "use_in_livekit": False,
        "use_in_mcp": False,
        "use_in_automation": False,
        "is_active": True,
        "status": "unknown",
        "consecutive_failures": 0,
        "tags": [],
        "priority": 0,
        "weight": 1,
        "created_at": created,
        "updated_at": created,
    }


async def _insert_at_0004(
    db: Database, connections: list[dict[str, Any]], pools: list[dict[str, Any]]
) -> None:
    engine = create_engine(db.url)
    try:
        async with engine.begin() as conn:
            await conn.execute(CONNECTIONS.insert(), connections)
            await conn.execute(POOLS.insert(), pools)
    finally:
        await engine.dispose()


def test_upgrade_from_0004_gives_every_name_one_key_and_renames_clashes(
    fresh_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows from before 0005 that clash (across owners, by Unicode case, a pool and a connection)
    or look like an id: the oldest keeps the name, later ones are renamed, and it says so."""
    asyncio.run(_migrate(fresh_database, "upgrade", "0004"))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    lookalike = str(uuid.uuid4())
    rows = [
        _connection("Prod", None, t0),
        _connection("PROD", "bob", t0 + timedelta(days=1)),  # the fault: both existed
        _connection("Модель", None, t0 + timedelta(days=2)),
        _connection("модель", "bob", t0 + timedelta(days=3)),
        _connection("fast", None, t0 + timedelta(days=5)),
        _connection(lookalike, None, t0),
        _connection("meta/llama", None, t0),  # kept: refused for new names only
        _connection("Plain", None, t0),
    ]
    pools = [
        {
            "id": uuid.uuid4(),
            "name": "Fast",  # older than the connection "fast"
            "description": "",
            "strategy": "priority",
            "created_at": t0 + timedelta(days=4),
            "updated_at": t0 + timedelta(days=4),
        }
    ]
    asyncio.run(_insert_at_0004(fresh_database, rows, pools))
    with caplog.at_level(logging.WARNING):
        asyncio.run(_migrate(fresh_database, "upgrade", "head"))

    def renamed(row: dict[str, Any]) -> str:
        return f"{row['name']} ~{row['id'].hex[:8]}"

    expected = {
        "Prod": "Prod",
        "PROD": renamed(rows[1]),
        "Модель": "Модель",
        "модель": renamed(rows[3]),
        "fast": renamed(rows[4]),
        lookalike: renamed(rows[5]),
        "meta/llama": "meta/llama",
        "Plain": "Plain",
    }
    names = dict(fresh_database.query("SELECT id, name FROM llm_connections"))
    by_id = {_id(fresh_database, row["id"]): row["name"] for row in rows}
    assert {by_id[i]: name for i, name in names.items()} == expected
    assert fresh_database.query("SELECT name FROM llm_pools") == [("Fast",)]
    keys = fresh_database.query("SELECT name_key FROM llm_names")
    assert sorted(k for (k,) in keys) == sorted([name_key(n) for n in expected.values()] + ["fast"])
    logged = caplog.text
    for row in (rows[1], rows[3], rows[4], rows[5]):
        assert renamed(row) in logged
    assert "meta/llama" in logged  # listed as a name to rename by hand
    asyncio.run(_migrate(fresh_database, "downgrade", "0004"))  # and back, with the data
    assert len(fresh_database.query("SELECT id FROM llm_connections")) == len(rows)


def _id(db: Database, value: uuid.UUID) -> Any:
    """How the backend hands an id back: SQLite stores 32 hex digits, PostgreSQL a uuid."""
    return value.hex if db.backend == "sqlite" else value


async def _insert_connections(db: Database, connections: list[dict[str, Any]]) -> None:
    engine = create_engine(db.url)
    try:
        async with engine.begin() as conn:
            await conn.execute(CONNECTIONS.insert(), connections)
    finally:
        await engine.dispose()


def test_upgrade_from_0007_fills_the_tag_table_and_its_triggers_keep_it(
    fresh_database: Database,
) -> None:
    """0008 copies each string tag of each connection once, with the filtered columns; from
    then on the triggers follow inserts (by SQL alone) and updates; downgrade removes it all."""
    asyncio.run(_migrate(fresh_database, "upgrade", "0007"))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    a = _connection("a", None, t0) | {"tags": ["prod", "eu", "prod", 7], "use_in_livekit": True}
    b = _connection("b", None, t0) | {"tags": ["dev"], "is_active": False, "status": "inactive"}
    c = _connection("c", None, t0) | {"tags": {"not": "a list"}}
    asyncio.run(_insert_connections(fresh_database, [a, b, c]))
    asyncio.run(_migrate(fresh_database, "upgrade", "head"))
    query = (
        "SELECT tag, name, use_in_livekit, is_active, status FROM llm_connection_tags "
        "ORDER BY name, tag"
    )

    def side() -> list[tuple[Any, ...]]:
        return [(t, n, bool(lk), bool(on), s) for t, n, lk, on, s in fresh_database.query(query)]

    assert side() == [
        ("eu", "a", True, True, "unknown"),
        ("prod", "a", True, True, "unknown"),
        ("dev", "b", False, False, "inactive"),
    ]
    d = _connection("d", None, t0) | {"tags": ["gpu"]}
    asyncio.run(_insert_connections(fresh_database, [d]))
    fresh_database.execute("UPDATE llm_connections SET status = 'error' WHERE name = 'a'")
    fresh_database.execute("""UPDATE llm_connections SET tags = '["x"]' WHERE name = 'c'""")
    assert side() == [
        ("eu", "a", True, True, "error"),
        ("prod", "a", True, True, "error"),
        ("dev", "b", False, False, "inactive"),
        ("x", "c", False, True, "unknown"),
        ("gpu", "d", False, True, "unknown"),
    ]
    asyncio.run(_migrate(fresh_database, "downgrade", "0007"))
    tables, _ = asyncio.run(_schema(fresh_database))
    assert "llm_connection_tags" not in tables
    fresh_database.execute("UPDATE llm_connections SET tags = '[\"y\"]'")  # no trigger left
    assert len(fresh_database.query("SELECT id FROM llm_connections")) == 4


def test_0009_adds_the_usage_parts_and_cache_prices_in_place(fresh_database: Database) -> None:
    """0009's columns come and go without rebuilding a table: 0008's triggers keep working."""
    asyncio.run(_migrate(fresh_database, "upgrade", "0008"))
    a = _connection("a", None, datetime(2026, 1, 1, tzinfo=UTC)) | {"tags": ["prod"]}
    asyncio.run(_insert_connections(fresh_database, [a]))
    prices = {"cache_read_cost_per_million", "cache_write_cost_per_million"}
    parts = {"cache_read_tokens", "cache_write_tokens", "reasoning_tokens"}

    def columns() -> tuple[set[str], set[str]]:
        _, found = asyncio.run(_schema(fresh_database))
        return found["llm_connections"], found["llm_connection_usage"]

    def tag_status() -> list[tuple[Any, ...]]:
        return fresh_database.query("SELECT tag, status FROM llm_connection_tags")

    asyncio.run(_migrate(fresh_database, "upgrade", "head"))
    connections, usage = columns()
    assert prices <= connections and parts <= usage
    fresh_database.execute("UPDATE llm_connections SET status = 'error'")
    assert tag_status() == [("prod", "error")]
    asyncio.run(_migrate(fresh_database, "downgrade", "0008"))
    connections, usage = columns()
    assert not prices & connections and not parts & usage
    fresh_database.execute("UPDATE llm_connections SET status = 'active'")
    assert tag_status() == [("prod", "active")]
