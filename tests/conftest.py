"""Real parts only: the server runs as a subprocess on 127.0.0.1, on SQLite and on PostgreSQL.

PostgreSQL tests use a database of their own (created and dropped here) on 127.0.0.1:5432. They
skip when no server answers, except under CI, where they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

PG_ADMIN_DSN = os.environ.get("UMP_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class Database:
    """A database the tests own, and a way to look at it without going through the server."""

    backend: str
    url: str
    dsn: str  # for asyncpg, or the SQLite file path

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.backend == "sqlite":
            with sqlite3.connect(self.dsn) as conn:
                return list(conn.execute(sql).fetchall())

        async def run() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(self.dsn)
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(run())

    def execute(self, sql: str) -> None:
        if self.backend == "sqlite":
            with sqlite3.connect(self.dsn) as conn:
                conn.execute("PRAGMA foreign_keys=ON")  # cascade as the server's own does
                conn.execute(sql)
            return
        asyncio.run(_pg_execute(self.dsn, sql))

    def clear(self) -> None:
        for table in (
            "llm_audit_log",
            "llm_webhook_deliveries",
            "llm_webhooks",
            "llm_connection_usage",
            "llm_connection_health_checks",
            "llm_pool_members",
            "llm_pools",
            "llm_connections",
        ):
            self.execute(f"DELETE FROM {table}")


async def _pg_execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def make_database(backend: str, folder: Path) -> Iterator[Database]:
    """A fresh, empty database of the given backend (dropped afterwards for PostgreSQL)."""
    if backend == "sqlite":
        path = folder / "ump.db"
        yield Database(backend, f"sqlite+aiosqlite:///{path}", str(path))
        return
    name = f"ump_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at {PG_ADMIN_DSN} is not available: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield Database(
        backend, f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}", f"{base}/{name}"
    )
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Server:
    url: str
    db: Database
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMP_")}
    env["UMP_DATA_DIR"] = str(data_dir)
    env["XDG_STATE_HOME"] = str(data_dir / "state")  # where serve records its data folder
    env.update(extra)
    return env


def start_server(db: Database, data_dir: Path, **env: str) -> Server:
    return launch_server(db, data_dir, env, start_timeout_s=60.0)


def launch_server(
    db: Database,
    data_dir: Path,
    env: dict[str, str],
    *,
    start_timeout_s: float,
    port: int | None = None,
) -> Server:
    """``ump-llm serve`` on ``port`` (by default a free one), with ``env`` over a clean
    ``UMP_*`` environment."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"server-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ump_llm_connections",
                "serve",
                "--port",
                str(port),
                "--database-url",
                db.url,
            ],
            env=cli_env(data_dir, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", db, data_dir, log_path, process)
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not start in {start_timeout_s:g} s:\n{server.log()}")


@pytest.fixture(scope="session", params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    yield from make_database(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="session")
def server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Tests empty the tables behind the server's back: the gateway must notice quickly. No
    # scheduled probes: connections made from the guide's examples point at hosts off this
    # machine (the monitor's tests run servers of their own).
    running = start_server(
        database,
        tmp_path_factory.mktemp(f"data-{database.backend}"),
        UMP_GATEWAY_REFRESH_S="0.05",
        UMP_TOKEN_REFRESH_S="2",  # no token is made here: a poll of its table costs CPU
        UMP_USAGE_FLUSH_S="0.1",
        UMP_HEALTH_MONITOR="false",
    )
    yield running
    running.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    """A client on an empty registry; afterwards, the server must not have logged a 500."""
    server.db.clear()
    seen = len(server.log())
    with server.client() as client:
        deadline = time.monotonic() + 5
        while client.get("/v1/models").json()["data"]:
            assert time.monotonic() < deadline, "the gateway kept connections that are gone"
            time.sleep(0.02)
        yield client
    logged = server.log()[seen:]
    assert '" 500' not in logged, logged
    assert "Traceback" not in logged, logged


@pytest.fixture(params=BACKENDS)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database no server has touched, for each backend."""
    yield from make_database(request.param, tmp_path)
