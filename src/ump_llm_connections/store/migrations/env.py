"""Alembic environment: runs on a connection handed in by ``store.migrate``, or on its own
engine from ``sqlalchemy.url`` / ``UMP_DATABASE_URL`` when run by the ``alembic`` command.
Offline (``--sql``, ``ump-llm migrate --sql``) it writes PostgreSQL's SQL, whatever the URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from ump_llm_connections.config import Settings
from ump_llm_connections.store.engine import create_engine
from ump_llm_connections.store.tables import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine() -> None:
    url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(run_on)
    await engine.dispose()


def write_sql() -> None:
    context.configure(
        dialect_name="postgresql",
        dialect_opts={"paramstyle": "named"},  # raw SQL is written as it is (no %% escapes)
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if context.is_offline_mode():
    write_sql()
elif given is not None:
    run_on(given)
else:
    asyncio.run(run_with_own_engine())
