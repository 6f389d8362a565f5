"""Connections for the benchmarks, written straight to the store's tables (as the registry would,
names included): fast enough for 100,000 rows."""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ump_llm_connections.domain import ConnectionType, name_key
from ump_llm_connections.store.tables import ConnectionRow, NameRow

TAGS = ["prod", "dev", "fast", "cheap", "gpu", "eu", "us"]
TYPES = list(ConnectionType)


def connection_row(
    cid: uuid.UUID,
    name: str,
    *,
    rng: random.Random,
    base_url: str,
    now: datetime,
    model: str,
    active: bool = True,
    status: str = "unknown",
) -> dict[str, Any]:
    """A connection row of a random type, integrations and tags."""
    return {
        "id": cid,
        "name": name,
        "description": "",
        "connection_type": rng.choice(TYPES).value,
        "api_format": "openai",
        "base_url": base_url,
        "model_name": model,
        "extra_headers": {},
        "timeout": 60.0,
        "max_retries": 2,
        "use_in_livekit": rng.random() < 0.5,
        "use_in_mcp": rng.random() < 0.3,
        "use_in_automation": rng.random() < 0.2,
        "is_active": active,
        "status": status,
        "consecutive_failures": 0,
        "tags": rng.sample(TAGS, 2),
        "priority": 0,
        "weight": 1,
        "created_at": now,
        "updated_at": now,
    }


async def insert_connections(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Connections and the names they hold (``llm_names``)."""
    await conn.execute(insert(ConnectionRow), rows)
    names = [{"name_key": name_key(str(r["name"])), "connection_id": r["id"]} for r in rows]
    await conn.execute(insert(NameRow), names)
