"""What the server leaves on disk: the SQLite files and the data folder are its user's alone."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.conftest import make_database, start_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    db = next(make_database("sqlite", tmp_path / "db"))  # a folder the server creates
    server = start_server(db, tmp_path / "data")
    try:
        with server.client() as client:
            created = client.post(
                "/api/connections",
                json={"name": "Files", "connection_type": "local", "model_name": "m"},
            )
            assert created.status_code == 201, created.text
        path = Path(db.dsn)
        files = [path.with_name(path.name + s) for s in ("", "-wal", "-shm")]
        assert all(f.exists() for f in files), "the server runs SQLite in WAL mode"
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(path.parent) == 0o700
    finally:
        server.stop()


def test_an_older_readable_database_is_made_private(tmp_path: Path) -> None:
    db = next(make_database("sqlite", tmp_path / "data"))
    path = Path(db.dsn)
    path.parent.mkdir(mode=0o700)
    path.touch(mode=0o644)
    path.chmod(0o644)
    server = start_server(db, tmp_path / "data")
    server.stop()
    assert _mode(path) == 0o600
