"""The Alembic migrations, on both backends: the guide's three tables and their indexes."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import Database
from ump_llm_connections.store import migrate
from ump_llm_connections.store.engine import create_engine
from ump_llm_connections.store.tables import Base

TABLES = {
    "llm_connections",
    "llm_connection_usage",
    "llm_connection_health_checks",
    "llm_pools",
    "llm_pool_members",
    "llm_webhooks",
    "llm_webhook_deliveries",
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
        "uq_llm_connections_owner_name",
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
    assert "ix_llm_connection_usage_conn_time" in indexes["llm_connection_usage"]
    assert "ix_llm_connection_health_checks_conn_time" in indexes["llm_connection_health_checks"]
    if fresh_database.backend == "postgresql":  # the unique name index really is unique
        (definition,) = fresh_database.query(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_llm_connections_owner_name'"
        )[0]
        assert "UNIQUE" in definition and "lower" in definition


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
