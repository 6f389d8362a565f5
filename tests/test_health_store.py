"""A check recorded while its connection is being deleted is dropped, not an error: the
monitor's passive checks race the API's deletes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import delete

from tests.conftest import Database
from ump_llm_connections.clock import utcnow
from ump_llm_connections.config import Settings
from ump_llm_connections.domain import ConnectionCreate, ConnectionType
from ump_llm_connections.service import open_service
from ump_llm_connections.store.health import HealthStore
from ump_llm_connections.store.tables import ConnectionRow, HealthCheckRow


def check_of(connection_id: uuid.UUID) -> HealthCheckRow:
    return HealthCheckRow(
        connection_id=connection_id,
        created_at=utcnow(),
        kind="passive",
        success=False,
        latency_ms=1.0,
        error_kind="server_error",
        error="500 from 127.0.0.1",
    )


def test_a_check_of_a_connection_deleted_meanwhile_is_dropped(
    fresh_database: Database, tmp_path: Path
) -> None:
    async def go() -> object:
        service = await open_service(Settings(data_dir=tmp_path, database_url=fresh_database.url))
        try:
            made = await service.registry.create(
                ConnectionCreate(name="gone", connection_type=ConnectionType.local, model_name="m")
            )
            store = HealthStore(service.sessions)
            async with service.sessions() as other:  # deletes it, not committed yet
                await other.execute(delete(ConnectionRow).where(ConnectionRow.id == made.id))
                recording = asyncio.create_task(
                    store.record(check_of(made.id), threshold=3, enforce=True)
                )
                await asyncio.sleep(0.5)  # the check reads the row, then waits for its lock
                await other.commit()
            return await recording
        finally:
            await service.close()

    assert asyncio.run(go()) is None
    assert fresh_database.query("SELECT count(*) FROM llm_connection_health_checks") == [(0,)]
