"""Usage rows survive a database that refuses writes, a SIGTERM and a SIGKILL.

Rows the database does not take go to ``usage-spill.jsonl`` in the data dir and are stored, each
once, when a server next runs with the database healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.conftest import Database, Server, start_server
from tests.test_gateway import HELLO, KEY, connect
from tests.upstreams.openai import FakeOpenAI

OPENAI = {"connection_type": "openai", "path": "/v1"}
SPILL = "usage-spill.jsonl"


def chat(server: Server, count: int) -> None:
    with server.client() as client:
        for _ in range(count):
            response = client.post("/v1/chat/completions", json={"model": "gw", "messages": HELLO})
            assert response.status_code == 200, response.text


def usage_count(db: Database) -> tuple[int, int]:
    """Rows, and distinct event ids among them."""
    ((rows, ids),) = db.query("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM llm_connection_usage")
    return int(rows), int(ids)


def wait_rows(db: Database, expected: int) -> tuple[int, int]:
    deadline = time.monotonic() + 30
    while (counted := usage_count(db))[0] < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return counted


def stop(server: Server, sig: signal.Signals = signal.SIGTERM) -> None:
    server.process.send_signal(sig)
    try:
        server.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        pytest.fail(f"the server did not stop:\n{server.log()}")


@contextlib.contextmanager
def writes_refused(db: Database) -> Iterator[None]:
    """The usage table takes no writes while inside: SQLite is locked by another connection
    (the server's writes wait out its busy timeout), PostgreSQL's table is locked (its
    writes wait without end)."""
    if db.backend == "sqlite":
        conn = sqlite3.connect(db.dsn, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    loop = asyncio.new_event_loop()
    pg = loop.run_until_complete(asyncpg.connect(db.dsn))
    lock = pg.transaction()
    loop.run_until_complete(lock.start())
    loop.run_until_complete(pg.execute("LOCK TABLE llm_connection_usage IN ACCESS EXCLUSIVE MODE"))
    try:
        yield
    finally:
        loop.run_until_complete(lock.rollback())
        loop.run_until_complete(pg.close())
        loop.close()


def spilled(data_dir: Path) -> list[dict[str, object]]:
    path = data_dir / SPILL
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_sigterm_while_the_database_refuses_writes_spills_every_row(
    fresh_database: Database, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with FakeOpenAI(api_key=KEY) as fake:
        server = start_server(fresh_database, data)
        with server.client() as api:
            connect(api, fake, OPENAI)
        with writes_refused(fresh_database):
            chat(server, 20)
            stop(server)
            rows = spilled(data)
            assert len(rows) == 20, server.log()
            assert len({r["event_id"] for r in rows}) == 20
            assert (data / SPILL).stat().st_mode & 0o777 == 0o600
        assert usage_count(fresh_database) == (0, 0)  # nothing went in behind the lock
        again = start_server(fresh_database, data)
        try:
            assert wait_rows(fresh_database, 20) == (20, 20), again.log()
            deadline = time.monotonic() + 30
            while (data / SPILL).exists():
                assert time.monotonic() < deadline, "the spill file was kept after its replay"
                time.sleep(0.1)
        finally:
            stop(again)
    assert usage_count(fresh_database) == (20, 20)  # and no row twice


def test_sigkill_after_a_quiet_flush_interval_loses_nothing(
    fresh_database: Database, tmp_path: Path
) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        server = start_server(fresh_database, tmp_path / "data")
        with server.client() as api:
            connect(api, fake, OPENAI)
        with ThreadPoolExecutor(4) as pool:  # steady load from four callers
            list(pool.map(lambda _: chat(server, 50), range(4)))
        time.sleep(2.5)  # quiet for more than the flush interval (1 s by default)
        stop(server, signal.SIGKILL)
    assert usage_count(fresh_database) == (200, 200)


def test_a_flush_interval_over_a_second_is_refused(
    fresh_database: Database, tmp_path: Path
) -> None:
    """At most the last flush interval is lost on SIGKILL: so it may be at most 1 s."""
    with pytest.raises(RuntimeError, match="usage_flush_s"):
        start_server(fresh_database, tmp_path / "data", UMP_USAGE_FLUSH_S="5")


def test_replay_skips_an_unfinished_last_line_and_rows_stored_already(
    fresh_database: Database, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with FakeOpenAI(api_key=KEY) as fake:
        server = start_server(fresh_database, data)
        with server.client() as api:
            connection = connect(api, fake, OPENAI)
        stop(server)
    ids = [uuid.uuid4() for _ in range(4)]
    rows = [
        {
            "event_id": str(event_id),
            "connection_id": connection["id"],
            "created_at": f"2026-11-27T10:00:0{i}+00:00",
            "source": "api",
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "latency_ms": 12.5,
            "ttft_ms": None,
            "success": True,
            "error_kind": None,
            "cost": None,
            "pool_id": None,
        }
        for i, event_id in enumerate(ids)
    ]
    # The first row was stored by a replay that died before it could remove the file.
    sqlite = fresh_database.backend == "sqlite"  # which stores UUIDs as 32 hex digits
    cid = uuid.UUID(connection["id"]).hex if sqlite else connection["id"]
    eid = ids[0].hex if sqlite else str(ids[0])
    fresh_database.execute(
        "INSERT INTO llm_connection_usage (event_id, connection_id, created_at, source, success)"
        f" VALUES ('{eid}', '{cid}', '2026-11-27 10:00:00+00:00', 'api', true)"
    )
    lines = [orjson.dumps(row) + b"\n" for row in rows[:3]]
    unfinished = orjson.dumps(rows[3])[:40]  # killed while writing the last line
    (data / SPILL).write_bytes(b"".join(lines) + unfinished)
    server = start_server(fresh_database, data)
    try:
        assert wait_rows(fresh_database, 3) == (3, 3), server.log()
        deadline = time.monotonic() + 30
        while (data / SPILL).exists():
            assert time.monotonic() < deadline, "the spill file was kept after its replay"
            time.sleep(0.1)
        assert "unfinished last line" in server.log()
    finally:
        stop(server)
    assert usage_count(fresh_database) == (3, 3)
    tokens = fresh_database.query(
        "SELECT COUNT(*) FROM llm_connection_usage WHERE prompt_tokens = 3"
    )
    assert tokens == [(2,)]  # the two rows replayed, not the one stored before
