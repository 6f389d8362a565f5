"""Alembic, driven from code: ``upgrade`` on start-up and from ``ump-llm migrate``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, "downgrade", revision)


async def _run(engine: AsyncEngine, action: str, revision: str) -> None:
    def apply(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        getattr(command, action)(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(apply)
