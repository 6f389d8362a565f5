"""``ump-llm``, run as a user would: the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import Database, cli_env, free_port
from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI

UMP_LLM = str(Path(sys.executable).parent / "ump-llm")


def run(
    *args: str, data_dir: Path, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UMP_LLM, *args],
        env=cli_env(data_dir, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    top = run("--help", data_dir=tmp_path)
    assert top.returncode == 0
    for command in ("serve", "migrate", "connections", "generate-key"):
        assert command in top.stdout
    sub = run("connections", "--help", data_dir=tmp_path)
    for command in ("list", "add", "show", "rm", "test", "models"):
        assert command in sub.stdout


def test_connections_lifecycle(fresh_database: Database, tmp_path: Path) -> None:
    db = ("--database-url", fresh_database.url)
    key = "sk-cli-secret-value-0123456789"
    added = run(
        "connections",
        "add",
        "--name",
        "Local Ollama",
        "--type",
        "local",
        "--model",
        "llama3.2:3b",
        "--livekit",
        "--mcp",
        "--tag",
        "dev",
        *db,
        data_dir=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    assert "api_format" in added.stdout and "ollama" in added.stdout

    with_key = run(
        "connections",
        "add",
        "--name",
        "OpenAI",
        "--type",
        "openai",
        "--model",
        "gpt-4o",
        "--api-key-env",
        "MY_OPENAI_KEY",
        "--json",
        *db,
        data_dir=tmp_path,
        MY_OPENAI_KEY=key,
    )
    assert with_key.returncode == 0, with_key.stderr
    created = json.loads(with_key.stdout)
    assert created["has_api_key"] is True
    assert key not in with_key.stdout

    from_stdin = run(
        "connections",
        "add",
        "--name",
        "Groq",
        "--type",
        "groq",
        "--model",
        "llama-3.1-8b",
        "--api-key-stdin",
        *db,
        data_dir=tmp_path,
        stdin=key + "\n",
    )
    assert from_stdin.returncode == 0, from_stdin.stderr

    listed = run("connections", "list", *db, data_dir=tmp_path)
    assert listed.returncode == 0
    assert "Local Ollama" in listed.stdout and "OpenAI" in listed.stdout
    assert "3 of 3 connections" in listed.stdout
    assert key not in listed.stdout

    only_livekit = json.loads(
        run("connections", "list", "--livekit", "--json", *db, data_dir=tmp_path).stdout
    )
    assert [c["name"] for c in only_livekit["items"]] == ["Local Ollama"]

    shown = run("connections", "show", "openai", "--json", *db, data_dir=tmp_path)
    assert json.loads(shown.stdout)["id"] == created["id"]

    duplicate = run(
        "connections",
        "add",
        "--name",
        "openai",
        "--type",
        "openai",
        "--model",
        "gpt-4o",
        *db,
        data_dir=tmp_path,
    )
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr

    refused = run("connections", "rm", "OpenAI", *db, data_dir=tmp_path, stdin="n\n")
    assert refused.returncode != 0
    removed = run("connections", "rm", "OpenAI", "--yes", *db, data_dir=tmp_path)
    assert removed.returncode == 0, removed.stderr
    missing = run("connections", "show", "OpenAI", *db, data_dir=tmp_path)
    assert missing.returncode == 1
    assert "no connection" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--type", "local", "--timeout", "-5"), "timeout"),
        (("--type", "local", "--base-url", "ftp://x"), "base_url"),
        (("--type", "openai", "--api-key-env", "NOT_SET_ANYWHERE"), "NOT_SET_ANYWHERE"),
    ],
)
def test_add_rejects_bad_input(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run("connections", "add", "--name", "X", "--model", "m", *args, data_dir=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_public_address_without_auth(tmp_path: Path) -> None:
    result = run("serve", "--host", "0.0.0.0", data_dir=tmp_path)
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0" in result.stderr


def test_migrate_and_generate_key(fresh_database: Database, tmp_path: Path) -> None:
    result = run("migrate", "--database-url", fresh_database.url, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    key = run("generate-key", data_dir=tmp_path).stdout.strip()
    assert len(key) == 44


def test_connections_test_and_models(fresh_database: Database, tmp_path: Path) -> None:
    db = ("--database-url", fresh_database.url)
    with FakeOpenAI(api_key="sk-cli-test-key-000000000000") as fake:
        added = run(
            "connections",
            "add",
            "--name",
            "Fake",
            "--type",
            "remote",
            "--base-url",
            f"{fake.url}/v1",
            "--model",
            "fake-model",
            "--max-retries",
            "0",
            "--api-key-env",
            "KEY",
            *db,
            data_dir=tmp_path,
            KEY="sk-cli-test-key-000000000000",
        )
        assert added.returncode == 0, added.stderr
        ok = run("connections", "test", "Fake", *db, data_dir=tmp_path)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("OK Fake: ")
        assert "12 prompt + 9 completion tokens" in ok.stdout
        assert fake.reply.text in ok.stdout

        as_json = run(
            "connections", "test", "Fake", "--prompt", "Say OK", "--json", *db, data_dir=tmp_path
        )
        assert json.loads(as_json.stdout)["success"] is True
        assert fake.requests[-1].body["messages"][-1]["content"] == "Say OK"

        models = run("connections", "models", "Fake", *db, data_dir=tmp_path)
        assert models.stdout.split() == fake.models

        fake.behaviour = Behaviour.unauthorized
        failed = run("connections", "test", "Fake", *db, data_dir=tmp_path)
        assert failed.returncode == 1
        assert "FAILED Fake: auth: 401 from" in failed.stdout
        assert "check the API key" in failed.stdout
        no_models = run("connections", "models", "Fake", *db, data_dir=tmp_path)
        assert no_models.returncode == 1
        assert "auth" in no_models.stderr
    shown = json.loads(run("connections", "show", "Fake", "--json", *db, data_dir=tmp_path).stdout)
    assert (shown["status"], shown["consecutive_failures"]) == ("error", 1)


def test_a_fresh_migration_prints_no_warning(fresh_database: Database, tmp_path: Path) -> None:
    result = run("migrate", "--database-url", fresh_database.url, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextmanager
def serving(*args: str, url: str, cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """``ump-llm serve ARGS`` until the block ends; waits until ``url``/healthz answers."""
    log = cwd / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [UMP_LLM, "serve", *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                answer = httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer.status_code == 200  # and the Host guard accepts the address
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
@pytest.mark.parametrize("host", ["[::1]", "::1"])
def test_serve_on_ipv6_loopback(tmp_path: Path, host: str) -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        port = sock.getsockname()[1]
    db = f"sqlite+aiosqlite:///{tmp_path / 'ump.db'}"
    args = ("--host", host, "--port", str(port), "--database-url", db)
    env = cli_env(tmp_path, UMP_HEALTH_MONITOR="false")
    with serving(*args, url=f"http://[::1]:{port}", cwd=tmp_path, env=env):
        pass


def _no_ump_env(state: Path) -> dict[str, str]:
    """A user's shell: no UMP_* settings; serve records its data folder under ``state``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMP_")}
    return {**env, "XDG_STATE_HOME": str(state), "UMP_HEALTH_MONITOR": "false"}


def test_connections_commands_find_the_servers_database(tmp_path: Path) -> None:
    home, elsewhere, state = tmp_path / "project", tmp_path / "elsewhere", tmp_path / "state"
    home.mkdir()
    elsewhere.mkdir()
    env = _no_ump_env(state)
    port = free_port()
    with serving("--port", str(port), url=f"http://127.0.0.1:{port}", cwd=home, env=env):
        created = httpx.post(
            f"http://127.0.0.1:{port}/api/connections",
            json={"name": "Served", "connection_type": "local", "model_name": "m"},
        )
        assert created.status_code == 201, created.text

    def ump(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [UMP_LLM, *args],
            cwd=cwd,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    database = str(home / "data" / "ump.db")
    there = ump("connections", "list", cwd=home)  # where the server runs: its ./data
    assert "Served" in there.stdout, there.stderr
    assert database in there.stderr and "in this directory" in there.stderr

    found = ump("connections", "list", cwd=elsewhere)  # anywhere else: the server's, said so
    assert found.returncode == 0, found.stderr
    assert "Served" in found.stdout
    assert database in found.stderr and "last server" in found.stderr
    assert not (elsewhere / "data").exists()

    nothing = ump("connections", "list", cwd=elsewhere, XDG_STATE_HOME=str(tmp_path / "none"))
    assert nothing.returncode == 2
    assert "UMP_DATA_DIR" in nothing.stderr and "--database-url" in nothing.stderr
    assert "Traceback" not in nothing.stderr
    assert not (elsewhere / "data").exists()

    chosen = ump("connections", "show", "Served", cwd=elsewhere, UMP_DATA_DIR=str(home / "data"))
    assert chosen.returncode == 0, chosen.stderr
    assert database in chosen.stderr and "UMP_DATA_DIR" in chosen.stderr
