"""Web UI benchmark: 2,000 connections and 1,000,000 usage rows, measured in Chromium.

Seeds a fresh SQLite database (connections, 20 pools, a few health checks each, and usage rows
spread over the last 30 days across the four sources), starts ``ump-llm serve`` with default
settings, times the usage API's reports, then opens the web UI in headless Chromium
(/usr/bin/chromium, through Playwright) with an empty cache and measures:

- the connections page interactive: the list rendered and the Add Connection button enabled,
  under 1 s from navigation start;
- the usage dashboard (default window) with both charts drawn, under 2 s;
- each page's own assets (JS and CSS, uncompressed), under 200 KB.

    .venv/bin/python bench/ui.py [--connections 2000] [--usage-rows 1000000]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import Database, free_port, launch_server, make_database

from seeding import connection_row, insert_connections
from ump_llm_connections.clock import utcnow
from ump_llm_connections.domain import name_key
from ump_llm_connections.store.engine import create_engine
from ump_llm_connections.store.migrate import upgrade
from ump_llm_connections.store.tables import NameRow, PoolMemberRow, PoolRow

CHROMIUM = "/usr/bin/chromium"
UI = "/ai-compute/connections"
TARGET_LIST_MS = 1000.0
TARGET_DASHBOARD_MS = 2000.0
TARGET_ASSETS_KB = 200.0
TARGET_API_MS = 1000.0  # the dashboard's first report (24h); longer ones are for reference
SOURCES = ["api", "livekit", "mcp", "automation"]
POOLS = 20
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime in SQLite


async def seed_registry(db: Database, connections: int, base_url: str) -> list[uuid.UUID]:
    """Connections (and their names) and pools, through the store's tables."""
    engine = create_engine(db.url)
    await upgrade(engine)
    rng = random.Random(7)
    now = utcnow()
    ids = [uuid.uuid4() for _ in range(connections)]
    rows = [
        connection_row(
            cid,
            f"connection-{i:05d}",
            rng=rng,
            base_url=base_url,
            now=now,
            model=rng.choice(["gpt-4o-mini", "claude-3-5-haiku", "llama3.2:3b"]),
            status=rng.choice(["active", "active", "active", "error", "unknown"]),
        )
        for i, cid in enumerate(ids)
    ]
    pools = [
        {
            "id": uuid.uuid4(),
            "name": f"pool-{i:02d}",
            "description": "",
            "strategy": "priority",
            "created_at": now,
            "updated_at": now,
        }
        for i in range(POOLS)
    ]
    async with engine.begin() as conn:
        await insert_connections(conn, rows)
        await conn.execute(insert(PoolRow), pools)
        await conn.execute(
            insert(NameRow),
            [{"name_key": name_key(str(p["name"])), "pool_id": p["id"]} for p in pools],
        )
        await conn.execute(
            insert(PoolMemberRow),
            [
                {"pool_id": p["id"], "connection_id": ids[i * 5 + k], "priority": k, "weight": 1}
                for i, p in enumerate(pools)
                for k in range(5)
            ],
        )
    await engine.dispose()
    return ids


def seed_usage(
    path: str, ids: list[uuid.UUID], pool_ids: dict[uuid.UUID, uuid.UUID], count: int
) -> None:
    """``count`` usage rows over the last 30 days (plain sqlite3: a million rows in seconds),
    and five health checks per connection."""
    rng = random.Random(11)
    now = datetime.now(UTC).replace(tzinfo=None)
    span = timedelta(days=30).total_seconds()
    keys = [cid.hex for cid in ids]
    weights = [1 / (i + 1) for i in range(len(ids))]  # a few connections do most of the work

    def usage() -> Any:
        chosen = rng.choices(range(len(keys)), weights, k=count)
        for n, index in enumerate(chosen):
            when = now - timedelta(seconds=span * (n / count))
            ok = rng.random() < 0.97
            prompt, completion = rng.randint(20, 2000), rng.randint(5, 500)
            pool = pool_ids.get(ids[index])
            yield (
                keys[index],
                when.strftime(SQLITE_TIME),
                rng.choice(SOURCES),
                prompt,
                completion,
                rng.lognormvariate(6, 0.5),
                ok,
                None if ok else "server_error",
                (prompt * 0.15 + completion * 0.6) / 1e6,
                pool.hex if pool else None,
            )

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA synchronous = OFF")  # a benchmark's throwaway database
        conn.execute("PRAGMA cache_size = -262144")
        conn.executemany(
            "INSERT INTO llm_connection_usage (connection_id, created_at, source, prompt_tokens,"
            " completion_tokens, latency_ms, success, error_kind, cost, pool_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            usage(),
        )
        conn.executemany(
            "INSERT INTO llm_connection_health_checks (connection_id, created_at, kind, success,"
            " latency_ms) VALUES (?, ?, 'test', ?, ?)",
            (
                (key, (now - timedelta(hours=h)).strftime(SQLITE_TIME), h != 2, 300.0 + h)
                for key in keys
                for h in range(5)
            ),
        )
    with sqlite3.connect(path) as conn:
        conn.execute("ANALYZE")


def api_times(url: str) -> list[tuple[str, float, float]]:
    """The usage reports the dashboard asks for (the first, 24h, warmed and timed; the longer
    windows once each, for reference) and the list's activity call."""
    rows = []
    with httpx.Client(base_url=url, timeout=600) as client:
        client.get("/api/usage?window=24h&bucket=1h").raise_for_status()  # warm
        for window, bucket in (("24h", "1h"), ("7d", "1d"), ("30d", "1d")):
            path = f"/api/usage?window={window}&bucket={bucket}"
            begun = time.perf_counter()
            client.get(path).raise_for_status()
            target = TARGET_API_MS if window == "24h" else float("inf")
            rows.append((f"GET {path}", (time.perf_counter() - begun) * 1000, target))
            print(f"  {rows[-1][0]}: {rows[-1][1]:.0f} ms", flush=True)
        ids = [i["id"] for i in client.get("/api/connections?limit=50").json()["items"]]
        path = "/api/connections/activity?" + "&".join(f"id={i}" for i in ids)
        begun = time.perf_counter()
        client.get(path).raise_for_status()
        took = (time.perf_counter() - begun) * 1000
        rows.append(("GET /api/connections/activity (50 ids)", took, 100.0))
    return rows


def own_assets_kb(page: Page) -> float:
    """JS and CSS the page loaded from the server, uncompressed."""
    size = page.evaluate(
        """() => performance.getEntriesByType("resource")
            .filter((e) => /\\/assets\\/.*\\.(js|css)$/.test(new URL(e.name).pathname))
            .reduce((n, e) => n + e.decodedBodySize, 0)"""
    )
    return float(size) / 1024


def measure_page(browser: Any, url: str, ready: str) -> tuple[float, float]:
    """Milliseconds from navigation start until ``ready`` (a JS expression) holds, and the
    page's own assets in KB; a fresh context: nothing cached."""
    # Playwright's waits evaluate strings, which the page's CSP (rightly) forbids.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function(ready, timeout=60000, polling="raf")
    took = float(page.evaluate("performance.now()"))
    kb = own_assets_kb(page)  # all of it is in by then (the live stream never goes idle)
    context.close()
    if errors:
        raise RuntimeError(f"{url}: {errors}")
    return took, kb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--usage-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    results: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        databases = make_database("sqlite", Path(folder))
        db = next(databases)
        closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: probes fail at once
        begun = time.perf_counter()
        ids = asyncio.run(seed_registry(db, args.connections, closed))
        members = {
            row[1]: row[0]
            for row in db.query("SELECT pool_id, connection_id FROM llm_pool_members")
        }
        pool_of = {uuid.UUID(c): uuid.UUID(p) for c, p in members.items()}
        seed_usage(db.dsn, ids, pool_of, args.usage_rows)
        print(
            f"seeded {args.connections:,} connections, {POOLS} pools and "
            f"{args.usage_rows:,} usage rows in {time.perf_counter() - begun:.1f} s",
            flush=True,
        )
        server = launch_server(db, Path(folder) / "data", {}, start_timeout_s=300)
        try:
            for label, ms, target in api_times(server.url):
                results.append((label, ms, target, "ms"))
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
                )
                measure_page(browser, f"{server.url}{UI}#/connections", "true")  # warm the server
                list_ms, list_kb = measure_page(
                    browser,
                    f"{server.url}{UI}#/connections",
                    """(() => { const add = [...document.querySelectorAll("button")]
                        .find((b) => b.textContent.trim() === "Add Connection");
                      return add && !add.disabled
                        && document.querySelectorAll("tbody tr[data-id]").length > 0; })()""",
                )
                board_ms, board_kb = measure_page(
                    browser,
                    f"{server.url}{UI}#/usage",
                    'document.querySelectorAll(".chart-box[data-drawn]").length === 2',
                )
                browser.close()
            results += [
                ("connections page interactive", list_ms, TARGET_LIST_MS, "ms"),
                ("usage dashboard, charts drawn", board_ms, TARGET_DASHBOARD_MS, "ms"),
                ("connections page: own JS + CSS", list_kb, TARGET_ASSETS_KB, "KB"),
                ("usage dashboard: own JS + CSS", board_kb, TARGET_ASSETS_KB, "KB"),
            ]
        finally:
            server.stop()
            next(databases, None)
    missed = 0
    print(f"\n{'measure':<48} {'value':>10}   target")
    for label, value, target, unit in results:
        ok = value < target
        missed += not ok
        shown = f"< {target:g} {unit}" if target != float("inf") else "(reference)"
        print(f"[{'PASS' if ok else 'FAIL'}] {label:<41} {value:8.1f} {unit}   {shown}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
