"""Registry benchmark: 100,000 connections, list-with-filters and get-by-id over HTTP.

Seeds each backend (SQLite file, then a fresh PostgreSQL database on 127.0.0.1:5432), starts the
server as a user would (``ump-llm serve``) and times requests from one keep-alive client.
Targets on a 2-core machine: median list page (50 rows, two filters) under 20 ms, get under 5 ms.

    .venv/bin/python bench/registry.py [--rows 100000] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import Database, make_database, start_server

from ump_llm_connections.domain import ConnectionType, name_key
from ump_llm_connections.store.engine import create_engine
from ump_llm_connections.store.migrate import upgrade
from ump_llm_connections.store.tables import ConnectionRow, NameRow, utcnow

TAGS = ["prod", "dev", "fast", "cheap", "gpu", "eu", "us"]


async def seed(db: Database, rows: int) -> list[str]:
    engine = create_engine(db.url)
    await upgrade(engine)
    rng = random.Random(7)
    types = list(ConnectionType)
    ids: list[str] = []
    now = utcnow()
    batch: list[dict[str, object]] = []
    async with engine.begin() as conn:
        for i in range(rows):
            conn_id = uuid.uuid4()
            ids.append(str(conn_id))
            active = rng.random() < 0.8
            batch.append(
                {
                    "id": conn_id,
                    "name": f"connection-{i:06d}",
                    "description": "",
                    "connection_type": rng.choice(types).value,
                    "api_format": "openai",
                    "base_url": f"http://host-{i % 500}:8000/v1",
                    "model_name": "m",
                    "extra_headers": {},
                    "timeout": 60.0,
                    "max_retries": 2,
                    "use_in_livekit": rng.random() < 0.5,
                    "use_in_mcp": rng.random() < 0.3,
                    "use_in_automation": rng.random() < 0.2,
                    "is_active": active,
                    "status": "unknown" if active else "inactive",
                    "consecutive_failures": 0,
                    "tags": rng.sample(TAGS, 2),
                    "priority": 0,
                    "weight": 1,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(batch) == 5000:
                await _insert(conn, batch)
        if batch:
            await _insert(conn, batch)
    # What autovacuum would have done on a live database: statistics and the visibility map.
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.exec_driver_sql("VACUUM" if db.backend == "sqlite" else "VACUUM ANALYZE")
        await auto.exec_driver_sql("ANALYZE")
    await engine.dispose()
    return ids


async def _insert(conn: AsyncConnection, batch: list[dict[str, object]]) -> None:
    """Connections and the names they hold (``llm_names``), as the registry writes them."""
    await conn.execute(insert(ConnectionRow), batch)
    names = [{"name_key": name_key(str(r["name"])), "connection_id": r["id"]} for r in batch]
    await conn.execute(insert(NameRow), names)
    batch.clear()


def timed(client: httpx.Client, paths: list[str]) -> list[float]:
    times = []
    for path in paths:
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return times


def report(label: str, times: list[float], target: float) -> None:
    times.sort()
    median = statistics.median(times)
    p95 = times[int(len(times) * 0.95) - 1]
    verdict = "ok" if median < target else "OVER TARGET"
    print(
        f"  {label:<38} median {median:7.2f} ms   p95 {p95:7.2f} ms   "
        f"(target median < {target:g} ms: {verdict})"
    )


def run_backend(backend: str, rows: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        databases = make_database(backend, Path(folder))
        db = next(databases)
        start = time.perf_counter()
        ids = asyncio.run(seed(db, rows))
        print(f"{backend}: seeded {rows:,} connections in {time.perf_counter() - start:.1f} s")
        server = start_server(db, Path(folder) / "data")
        try:
            rng = random.Random(1)
            with server.client() as client:
                timed(client, ["/api/connections?limit=50"] * 20)  # warm up
                lists = [
                    f"/api/connections?connection_type={rng.choice(list(ConnectionType)).value}"
                    f"&is_active=true&limit=50&offset={rng.randrange(0, 500)}"
                    for _ in range(requests)
                ]
                report("list: type + is_active, 50 rows", timed(client, lists), 20)
                flags = [
                    f"/api/connections?use_in_livekit=true&tag={rng.choice(TAGS)}&limit=50"
                    for _ in range(requests)
                ]
                report("list: use_in_livekit + tag, 50 rows", timed(client, flags), 20)
                gets = [f"/api/connections/{rng.choice(ids)}" for _ in range(requests)]
                report("get by id", timed(client, gets), 5)
        finally:
            server.stop()
            next(databases, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    for backend in args.backend or ["sqlite", "postgresql"]:
        run_backend(backend, args.rows, args.requests)


if __name__ == "__main__":
    main()
