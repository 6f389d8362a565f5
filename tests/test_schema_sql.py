"""``ump-llm migrate --sql``: the PostgreSQL DDL a DBA runs by hand (``psql -f``) gives a database
the server starts on as it is, at the newest revision, triggers and all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from tests.conftest import make_database, start_server
from tests.test_cli import run
from ump_llm_connections.store.migrate import HEAD

TABLES = {
    "alembic_version",
    "llm_api_tokens",
    "llm_audit_log",
    "llm_connection_health_checks",
    "llm_connection_tags",
    "llm_connection_usage",
    "llm_connections",
    "llm_names",
    "llm_pool_members",
    "llm_pools",
    "llm_webhook_deliveries",
    "llm_webhooks",
}


async def _apply(dsn: str, script: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(script)
    finally:
        await conn.close()


def test_help_describes_it(tmp_path: Path) -> None:
    shown = run("migrate", "--help", data_dir=tmp_path)
    assert shown.returncode == 0
    assert "--sql" in shown.stdout and "PostgreSQL DDL" in shown.stdout


def test_the_printed_schema_makes_a_database_the_server_starts_on(tmp_path: Path) -> None:
    printed = run("migrate", "--sql", data_dir=tmp_path / "nowhere")
    assert printed.returncode == 0, printed.stderr
    script = printed.stdout
    assert script.startswith("BEGIN;") and script.rstrip().endswith("COMMIT;")
    assert not (tmp_path / "nowhere" / "ump.db").exists()  # no database was touched
    for db in make_database("postgresql", tmp_path):
        asyncio.run(_apply(db.dsn, script))
        tables = {name for (name,) in db.query("SELECT tablename FROM pg_tables")}
        assert tables >= TABLES
        assert db.query("SELECT version_num FROM alembic_version") == [(HEAD,)]
        server = start_server(db, tmp_path / "data", UMP_HEALTH_MONITOR="false")
        try:
            with server.client() as client:
                body = {
                    "name": "from-the-script",
                    "connection_type": "openai",
                    "base_url": "http://127.0.0.1:9/v1",  # never called
                    "model_name": "fake-model",
                    "tags": ["dba"],
                }
                made = client.post("/api/connections", json=body)
                assert made.status_code == 201, made.text
                tagged = client.get("/api/connections", params={"tag": "dba"}).json()
                assert [c["name"] for c in tagged["items"]] == ["from-the-script"]
        finally:
            server.stop()
        migrated = run("migrate", "--database-url", db.url, data_dir=tmp_path / "data")
        assert migrated.returncode == 0 and "up to date" in migrated.stdout, migrated.stderr
        assert db.query("SELECT version_num FROM alembic_version") == [(HEAD,)]
