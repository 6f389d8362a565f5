"""Registry benchmark: 100,000 connections, list-with-filters and get-by-id over HTTP.

Seeds each backend (SQLite file, then a fresh PostgreSQL database on 127.0.0.1:5432), starts the
server as a user would (``ump-llm serve``, default settings) and times requests from one
keep-alive client. Targets on a 2-core machine: median list page (50 rows, two filters) under
20 ms, get (with its health summary) under 5 ms.

The default settings include the health monitor: it probes every connection once per
``UMP_HEALTH_INTERVAL_S`` (300 s), at most ``UMP_HEALTH_CONCURRENCY`` (8) at once, so with
100,000 connections it is busy all the time, and the numbers are the registry's under that load.
The seeded connections point at a closed port on 127.0.0.1 (nothing leaves the machine, and each
probe fails at once); the script says how many probes ran while it measured.

    .venv/bin/python bench/registry.py [--rows 100000] [--requests 300] [--backend sqlite]

Exit status 1 when a target is missed.
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
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import Database, free_port, launch_server, make_database

from seeding import TAGS, connection_row, insert_connections
from ump_llm_connections.clock import utcnow
from ump_llm_connections.config import Settings
from ump_llm_connections.domain import ConnectionType
from ump_llm_connections.store.engine import create_engine
from ump_llm_connections.store.migrate import upgrade
from ump_llm_connections.store.tables import HealthCheckRow

TARGET_LIST_MS = 20.0
TARGET_GET_MS = 5.0
START_TIMEOUT_S = 600.0  # the server loads every connection into the gateway before it answers


async def seed(db: Database, rows: int, base_url: str) -> list[str]:
    engine = create_engine(db.url)
    await upgrade(engine)
    rng = random.Random(7)
    ids: list[str] = []
    now = utcnow()
    batch: list[dict[str, object]] = []
    async with engine.begin() as conn:
        for i in range(rows):
            conn_id = uuid.uuid4()
            ids.append(str(conn_id))
            active = rng.random() < 0.8
            batch.append(
                connection_row(
                    conn_id,
                    f"connection-{i:06d}",
                    rng=rng,
                    base_url=base_url,
                    now=now,
                    model="m",
                    active=active,
                    status="unknown" if active else "inactive",
                )
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
    await insert_connections(conn, batch)
    batch.clear()


async def count_checks(db: Database) -> int:
    engine = create_engine(db.url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(HealthCheckRow)) or 0)
    finally:
        await engine.dispose()


def timed(client: httpx.Client, paths: list[str]) -> list[float]:
    times = []
    for path in paths:
        start_at = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start_at) * 1000)
        response.raise_for_status()
    return times


def report(label: str, times: list[float], target: float) -> bool:
    times.sort()
    median = statistics.median(times)
    p95 = times[int(len(times) * 0.95) - 1]
    ok = median < target
    print(
        f"  [{'PASS' if ok else 'FAIL'}] {label:<38} median {median:7.2f} ms   "
        f"p95 {p95:7.2f} ms   (target median < {target:g} ms)",
        flush=True,
    )
    return ok


def run_backend(backend: str, rows: int, requests: int) -> list[str]:
    """Measure one backend; the names of the targets it missed."""
    missed: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        databases = make_database(backend, Path(folder))
        db = next(databases)
        closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: refused at once
        begun = time.perf_counter()
        ids = asyncio.run(seed(db, rows, closed))
        print(f"{backend}: seeded {rows:,} connections in {time.perf_counter() - begun:.1f} s")
        begun = time.perf_counter()
        server = launch_server(db, Path(folder) / "data", {}, start_timeout_s=START_TIMEOUT_S)
        print(f"  server started in {time.perf_counter() - begun:.1f} s", flush=True)
        try:
            rng = random.Random(1)
            checks_before = asyncio.run(count_checks(db))
            measuring = time.perf_counter()
            with server.client() as client:
                timed(client, ["/api/connections?limit=50"] * 20)  # warm up
                lists = [
                    f"/api/connections?connection_type={rng.choice(list(ConnectionType)).value}"
                    f"&is_active=true&limit=50&offset={rng.randrange(0, 500)}"
                    for _ in range(requests)
                ]
                for label, paths, target in (
                    ("list: type + is_active, 50 rows", lists, TARGET_LIST_MS),
                    (
                        "list: use_in_livekit + tag, 50 rows",
                        [
                            f"/api/connections?use_in_livekit=true&tag={rng.choice(TAGS)}&limit=50"
                            for _ in range(requests)
                        ],
                        TARGET_LIST_MS,
                    ),
                    (
                        "get by id (with health)",
                        [f"/api/connections/{rng.choice(ids)}" for _ in range(requests)],
                        TARGET_GET_MS,
                    ),
                ):
                    if not report(label, timed(client, paths), target):
                        missed.append(f"{backend}: {label}")
            seconds = time.perf_counter() - measuring
            probes = asyncio.run(count_checks(db)) - checks_before
            print(
                f"  meanwhile the health monitor ran {probes:,} probes "
                f"({probes / seconds:.0f}/s) against {closed}",
                flush=True,
            )
        finally:
            server.stop()
            next(databases, None)
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    fields = Settings.model_fields  # the server runs without any UMP_* variable: defaults
    monitor, interval = fields["health_monitor"].default, fields["health_interval_s"].default
    print(
        f"server: default settings; health monitor {'on' if monitor else 'off'}, every "
        f"connection every {interval:g} s, at most {fields['health_concurrency'].default} probes "
        f"at once (~{args.rows / interval:.0f} probes/s due with {args.rows:,} connections)"
    )
    missed: list[str] = []
    for backend in args.backend or ["sqlite", "postgresql"]:
        missed += run_backend(backend, args.rows, args.requests)
    print("\nall targets met" if not missed else f"\nmissed: {'; '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
