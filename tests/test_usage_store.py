"""The usage store keeps a batch when some of its connections or pools were deleted meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from tests.conftest import Database
from ump_llm_connections.clock import utcnow
from ump_llm_connections.config import Settings
from ump_llm_connections.domain import (
    ConnectionCreate,
    ConnectionType,
    PoolCreate,
    PoolMember,
    UsageReport,
)
from ump_llm_connections.gateway.usage import UsageEvent
from ump_llm_connections.reports import UsageReports
from ump_llm_connections.service import open_service
from ump_llm_connections.store.usage import UsageStore
from ump_llm_connections.store.usage_report import UsageGroups


def event(connection_id: uuid.UUID, pool_id: uuid.UUID | None) -> UsageEvent:
    return UsageEvent(
        connection_id=connection_id,
        created_at=utcnow(),
        source="api",
        prompt_tokens=1,
        completion_tokens=2,
        latency_ms=3.0,
        ttft_ms=None,
        success=True,
        error_kind=None,
        cost=None,
        pool_id=pool_id,
    )


def test_batch_survives_deleted_pool_and_connection(
    fresh_database: Database, tmp_path: Path
) -> None:
    async def go() -> tuple[int, UsageReport]:
        service = await open_service(Settings(data_dir=tmp_path, database_url=fresh_database.url))
        try:

            def make(name: str) -> ConnectionCreate:
                return ConnectionCreate(
                    name=name, connection_type=ConnectionType.local, model_name="m"
                )

            kept = await service.registry.create(make("kept"))
            gone = await service.registry.create(make("gone"))
            pool = await service.pools.create(
                PoolCreate(name="p", members=[PoolMember(connection_id=kept.id)])
            )
            await service.pools.delete(str(pool.id))
            await service.registry.delete(str(gone.id))
            store = UsageStore(service.sessions)
            stored = await store.append(
                [
                    event(kept.id, pool.id).row(),
                    event(gone.id, None).row(),
                    event(kept.id, None).row(),
                ],
                {kept.id: utcnow(), gone.id: utcnow()},
            )
            reports = UsageReports(
                store, UsageGroups(service.sessions), service.registry, service.pools
            )
            return stored, await reports.overall(window="1h", bucket="1h")
        finally:
            await service.close()

    stored, report = asyncio.run(go())
    assert stored == 2
    assert report.totals.requests == 2
    assert report.pools == []  # the deleted pool's id was dropped
