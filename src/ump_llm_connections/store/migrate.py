"""Alembic, driven from code: ``upgrade`` on start-up and from ``ump-llm migrate``; ``sql_script``
for ``ump-llm migrate --sql`` (Alembic's offline mode: the PostgreSQL DDL, run nowhere).

Alembic is imported only when there is something to migrate: a server whose database is already
at ``HEAD`` (every start but the first) does not carry it in memory.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0013"  # the newest revision; tests/test_migrations.py checks it against Alembic's


def alembic_config(url: str | None = None, *, output: io.StringIO | None = None) -> Config:
    from alembic.config import Config

    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def current(engine: AsyncEngine) -> str | None:
    """The database's revision, or None before the first migration."""
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except DBAPIError:  # no alembic_version table yet
        return None


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    if revision == "head" and await current(engine) == HEAD:
        return
    await _run(engine, "upgrade", revision)


def sql_script() -> str:
    """The SQL that creates the current schema (``HEAD``) in an empty PostgreSQL database, in
    one transaction, ``alembic_version`` included: for a DBA to run with ``psql -f``."""
    from alembic import command

    output = io.StringIO()
    command.upgrade(alembic_config(output=output), "head", sql=True)
    return output.getvalue()


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, "downgrade", revision)


async def _run(engine: AsyncEngine, action: str, revision: str) -> None:
    from alembic import command

    def apply(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        getattr(command, action)(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(apply)
