"""API keys: encrypted at rest, write-only, and never in a response, a log line or the DB."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import Database, Server, cli_env, start_server
from ump_llm_connections.errors import ConfigurationError
from ump_llm_connections.secrets import KeyBox, generate_key, key_id_of, load_keybox

PLAINTEXT = "sk-proj-PLAINTEXT-never-stored-7f3a9c1d2e4b"
REPLACEMENT = "sk-ant-api03-REPLACEMENT-never-stored-99zz"


def test_keybox_round_trip_and_binding() -> None:
    box = KeyBox(os.urandom(32))
    sealed = box.encrypt(PLAINTEXT, context="row-1")
    assert PLAINTEXT not in sealed
    assert key_id_of(sealed) == box.key_id
    assert box.decrypt(sealed, context="row-1") == PLAINTEXT
    assert box.encrypt(PLAINTEXT, context="row-1") != sealed  # fresh nonce each time
    with pytest.raises(ConfigurationError, match="moved between rows"):
        box.decrypt(sealed, context="row-2")
    with pytest.raises(ConfigurationError, match="server key"):
        KeyBox(os.urandom(32)).decrypt(sealed, context="row-1")


def test_key_file_is_created_private(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "secret.key"
    assert load_keybox(secret_key=None, key_file=key_file, create=False) is None
    box = load_keybox(secret_key=None, key_file=key_file, create=True)
    assert box is not None
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.parent.stat().st_mode & 0o777 == 0o700
    again = load_keybox(secret_key=None, key_file=key_file, create=True)
    assert again is not None and again.key_id == box.key_id
    key_file.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_keybox(secret_key=None, key_file=key_file, create=False)


def test_secret_key_from_environment(tmp_path: Path) -> None:
    key = generate_key()
    box = load_keybox(secret_key=key, key_file=tmp_path / "unused", create=True)
    assert box is not None
    assert box.key_id == KeyBox(base64.urlsafe_b64decode(key)).key_id
    assert not (tmp_path / "unused").exists()
    with pytest.raises(ConfigurationError, match="UMP_SECRET_KEY is not a valid key"):
        load_keybox(secret_key="too-short", key_file=tmp_path / "unused", create=True)


def test_key_is_write_only_and_masked(api: httpx.Client) -> None:
    body = {
        "name": "OpenAI",
        "connection_type": "openai",
        "model_name": "gpt-4o",
        "api_key": PLAINTEXT,
    }
    created = api.post("/api/connections", json=body)
    assert created.status_code == 201
    data = created.json()
    assert data["has_api_key"] is True
    assert data["api_key_mask"] == "sk-…" + PLAINTEXT[-4:]
    assert "api_key" not in data
    url = f"/api/connections/{data['id']}"

    replaced = api.patch(url, json={"api_key": REPLACEMENT}).json()
    assert replaced["api_key_mask"] == "sk-…" + REPLACEMENT[-4:]
    kept = api.patch(url, json={"description": "no key change"}).json()
    assert kept["api_key_mask"] == replaced["api_key_mask"]
    cleared = api.patch(url, json={"api_key": None}).json()
    assert cleared["has_api_key"] is False
    assert cleared["api_key_mask"] is None


def test_plaintext_is_nowhere(api: httpx.Client, server: Server) -> None:
    """Create, read, list, update and fail with keys; then search every byte we can reach."""
    responses: list[str] = []
    body = {
        "name": "Secret",
        "connection_type": "anthropic",
        "model_name": "claude-sonnet-4",
        "api_key": PLAINTEXT,
    }
    created = api.post("/api/connections", json=body)
    responses.append(created.text)
    conn_id = created.json()["id"]
    responses.append(api.post("/api/connections", json=body).text)  # 409 with the key in it
    responses.append(api.post("/api/connections", json={**body, "timeout": -1}).text)
    responses.append(api.get(f"/api/connections/{conn_id}").text)
    responses.append(api.get("/api/connections").text)
    responses.append(api.get("/api/connections", params={"q": "Secret"}).text)
    second = {
        "name": "Second",
        "connection_type": "openai",
        "model_name": "gpt-4o",
        "api_key": REPLACEMENT,
    }
    responses.append(api.post("/api/connections", json=second).text)
    responses.append(api.patch(f"/api/connections/{conn_id}", json={"api_key": PLAINTEXT}).text)

    for secret in (PLAINTEXT, REPLACEMENT):
        for text in responses:
            assert secret not in text
        assert secret not in server.log()
        rows = server.db.query("SELECT * FROM llm_connections")
        assert len(rows) == 2
        assert secret not in repr(rows)
        if server.db.backend == "sqlite":
            for path in Path(server.db.dsn).parent.glob("ump.db*"):
                assert secret.encode() not in path.read_bytes(), path
    stored = server.db.query("SELECT api_key_encrypted FROM llm_connections")
    assert all(value.startswith("v1.") for (value,) in stored)


def _serve_once(db: Database, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ump_llm_connections", "migrate", "--database-url", db.url],
        env=cli_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_wrong_or_missing_server_key_refuses_to_start(
    fresh_database: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(fresh_database, data_dir)
    try:
        body = {
            "name": "K",
            "connection_type": "openai",
            "model_name": "gpt-4o",
            "api_key": PLAINTEXT,
        }
        assert server.client().post("/api/connections", json=body).status_code == 201
    finally:
        server.stop()

    wrong = _serve_once(fresh_database, data_dir, UMP_SECRET_KEY=generate_key())
    assert wrong.returncode == 2
    assert "encrypted with server key" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    (data_dir / "secret.key").rename(tmp_path / "moved.key")
    missing = _serve_once(fresh_database, data_dir)
    assert missing.returncode == 2
    assert "no server key was found" in missing.stderr
    assert not (data_dir / "secret.key").exists()  # no new key quietly made over old rows

    # The app itself refuses too, when run by plain uvicorn without our CLI's pre-check.
    app_alone = subprocess.run(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "ump_llm_connections.api.app:create_app",
            "--port",
            "0",
        ],
        env=cli_env(data_dir, UMP_DATABASE_URL=fresh_database.url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert app_alone.returncode != 0
    assert "no server key was found" in app_alone.stderr

    (tmp_path / "moved.key").rename(data_dir / "secret.key")
    assert _serve_once(fresh_database, data_dir).returncode == 0
