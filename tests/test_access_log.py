"""The access log: off by default (usage rows record every call), on with UMP_ACCESS_LOG."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database, Server, make_database, start_server

REQUEST_LINE = '"GET /api/connections/summary HTTP/1.1" 200'


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Database]:
    yield from make_database("sqlite", tmp_path)


def _served(db: Database, data_dir: Path, **env: str) -> str:
    server: Server = start_server(db, data_dir, **env)
    try:
        with server.client() as client:
            for _ in range(3):
                assert client.get("/api/connections/summary").status_code == 200
    finally:
        server.stop()
    return server.log()


def test_serve_writes_no_access_log_by_default(sqlite: Database, tmp_path: Path) -> None:
    log = _served(sqlite, tmp_path / "data")
    assert REQUEST_LINE not in log
    assert "Uvicorn running" in log  # the server's own log is still there


def test_access_log_setting_turns_it_on(sqlite: Database, tmp_path: Path) -> None:
    log = _served(sqlite, tmp_path / "data", UMP_ACCESS_LOG="true")
    assert log.count(REQUEST_LINE) == 3
