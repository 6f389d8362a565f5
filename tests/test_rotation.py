"""Key rotation: the ring of server keys, and ``ump-llm rotate-key`` run against a live server
under load, interrupted by SIGKILL, and with keys from the environment (both databases)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Database, Server, cli_env, start_server
from tests.test_webhooks import Receiver, verify, wait_for
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.config import Settings
from ump_llm_connections.domain import ConnectionCreate, ConnectionFilters
from ump_llm_connections.errors import ConfigurationError
from ump_llm_connections.secrets import (
    KeyBox,
    KeyFile,
    decode_key,
    encode_key,
    generate_key,
    key_id_for,
    key_id_of,
    load_keybox,
)
from ump_llm_connections.service import open_service

KEY = "sk-rotation-upstream-key-0123456789"
HEADER = "hdr-rotation-secret-value-42"
SECRET = "whsec-rotation-" + "s" * 20
HELLO = [{"role": "user", "content": "Hello"}]


# The ring ---------------------------------------------------------------------------------


def test_ring_encrypts_with_the_primary_and_decrypts_with_any_key() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed = KeyBox(old).encrypt("sk-plain", context="row-1")
    ring = KeyBox(new, old)
    assert ring.key_id == key_id_for(new)
    assert ring.key_ids == (key_id_for(new), key_id_for(old))
    assert ring.decrypt(sealed, context="row-1") == "sk-plain"
    assert key_id_of(ring.encrypt("sk-plain", context="row-1")) == key_id_for(new)

    moved = ring.reencrypt(sealed, context="row-1")
    assert key_id_of(moved) == key_id_for(new)
    assert KeyBox(new).decrypt(moved, context="row-1") == "sk-plain"
    assert ring.reencrypt(moved, context="row-1") == moved  # already on the primary
    with pytest.raises(ConfigurationError, match="moved between rows"):
        ring.reencrypt(sealed, context="row-2")
    with pytest.raises(ConfigurationError, match=f"server key {key_id_for(old)}"):
        KeyBox(new).decrypt(sealed, context="row-1")


def test_key_file_holds_several_keys_written_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    keys = KeyFile(path)
    first, second = os.urandom(32), os.urandom(32)
    keys.write([first, second])
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == f"{encode_key(first)}\n{encode_key(second)}\n"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert keys.load()[1] == [first, second]

    path.write_text(f"\n{encode_key(second)}\n\n")  # blank lines are fine
    assert keys.load()[1] == [second]
    path.write_text("not-a-key\n")
    with pytest.raises(ConfigurationError, match=r"line 1\) is not a valid key"):
        keys.load()
    path.write_text("\n")
    with pytest.raises(ConfigurationError, match="holds no key"):
        keys.load()


def test_a_ring_from_the_key_file_follows_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data" / "secret.key"
    box = load_keybox(secret_key=None, key_file=path, create=True)
    assert box is not None
    old = KeyFile(path).load()[1][0]
    before = box.encrypt("sk-plain", context="c")
    assert key_id_of(before) == key_id_for(old)

    # Another process rotates: the ring takes the new primary at its next encryption.
    new = os.urandom(32)
    KeyFile(path).write([new, old])
    after = box.encrypt("sk-plain", context="c")
    assert key_id_of(after) == key_id_for(new)
    assert box.decrypt(before, context="c") == "sk-plain"

    # A value under a key the ring has not read yet: the file is read again, once.
    third = os.urandom(32)
    foreign = KeyBox(third).encrypt("sk-third", context="c")
    KeyFile(path).write([third])
    assert box.decrypt(foreign, context="c") == "sk-third"
    assert box.key_ids == (key_id_for(third),)

    # A broken file is reported and the ring kept.
    path.write_text("garbage\n")
    with caplog.at_level(logging.WARNING, logger="ump_llm_connections.secrets"):
        assert key_id_of(box.encrypt("x", context="c")) == key_id_for(third)
    assert "key file changed but was not read" in caplog.text
    assert "garbage" not in caplog.text
    with pytest.raises(ConfigurationError, match="server key"):
        box.decrypt(before, context="c")  # the old key is gone from the file and the ring


def test_previous_keys_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = generate_key(), generate_key()
    sealed = KeyBox(decode_key(old, "old")).encrypt("sk-plain", context="c")
    monkeypatch.setenv("UMP_PREVIOUS_SECRET_KEYS", f" {generate_key()} ,{old},")
    settings = Settings(secret_key=new)
    assert len(settings.previous_secret_keys) == 2
    assert old not in repr(settings)
    box = load_keybox(
        secret_key=new,
        key_file=tmp_path / "unused",
        create=True,
        previous_keys=settings.previous_secret_keys,
    )
    assert box is not None and box.key_id == key_id_for(decode_key(new, "new"))
    assert box.decrypt(sealed, context="c") == "sk-plain"
    assert not (tmp_path / "unused").exists()
    with pytest.raises(ConfigurationError, match=r"UMP_PREVIOUS_SECRET_KEYS \(item 1\)"):
        load_keybox(secret_key=new, key_file=tmp_path, create=False, previous_keys=["short"])
    with pytest.raises(ConfigurationError, match="goes with UMP_SECRET_KEY"):
        load_keybox(secret_key=None, key_file=tmp_path / "k", create=True, previous_keys=[old])


# The command ------------------------------------------------------------------------------


def rotate(
    db: Database, data_dir: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ump_llm_connections",
            "rotate-key",
            "--database-url",
            db.url,
            *args,
        ],
        env=cli_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def key_ids_in_db(db: Database) -> set[str]:
    """Every key id a stored value names, from the database itself."""
    found: set[str] = set()
    rows = db.query("SELECT api_key_encrypted, extra_headers FROM llm_connections")
    rows += db.query("SELECT secret_encrypted, NULL FROM llm_webhooks")
    for row in rows:
        for text in row:
            found.update(part.split(".")[0] for part in str(text).split("v1.")[1:])
    return found


def file_keys(data_dir: Path) -> list[str]:
    return (data_dir / "secret.key").read_text().split()


class Load:
    """Gateway calls in threads until stopped; every answer that is not a 200 is kept."""

    def __init__(self, server: Server, model: str, threads: int = 3) -> None:
        self.calls = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(server, model)) for _ in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, server: Server, model: str) -> None:
        with server.client() as client:
            while not self._stop.is_set():
                try:
                    response = client.post(
                        "/v1/chat/completions", json={"model": model, "messages": HELLO}
                    )
                    outcome = None if response.status_code == 200 else response.text
                except httpx.HTTPError as exc:
                    outcome = repr(exc)
                with self._lock:
                    self.calls += 1
                    if outcome is not None:
                        self.failures.append(outcome)


def connection(client: httpx.Client, name: str, base_url: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "connection_type": "openai",
        "base_url": base_url,
        "model_name": "fake-model",
        "max_retries": 0,
        **fields,
    }
    response = client.post("/api/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def chat(client: httpx.Client, model: str) -> None:
    response = client.post("/v1/chat/completions", json={"model": model, "messages": HELLO})
    assert response.status_code == 200, response.text


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def test_rotation_under_load_then_a_restart_with_only_the_new_key(
    fresh_database: Database, tmp_path: Path, receiver: Receiver
) -> None:
    data_dir = tmp_path / "data"
    env = {"UMP_HEALTH_MONITOR": "false", "UMP_GATEWAY_REFRESH_S": "0.2"}
    server = start_server(fresh_database, data_dir, **env)
    with FakeOpenAI(api_key=KEY) as fake, FakeOpenAI(api_key="unset") as side_fake:
        try:
            with server.client() as api:
                connection(
                    api, "gw", fake.url + "/v1", api_key=KEY, extra_headers={"X-Extra": HEADER}
                )
                connection(api, "side", side_fake.url + "/v1", api_key="sk-side-start-0000")
                for n in range(12):
                    connection(api, f"spare-{n}", fake.url + "/v1", api_key=f"sk-spare-{n:04d}")
                hook = {"url": f"{receiver.url}/hook", "events": ["connection.created"]}
                made = api.post("/api/webhooks", json={**hook, "secret": SECRET})
                assert made.status_code == 201, made.text
                chat(api, "gw")
            (old,) = file_keys(data_dir)
            old_id = key_id_for(decode_key(old, "old"))
            assert key_ids_in_db(fresh_database) == {old_id}
            stamps = dict(fresh_database.query("SELECT name, updated_at FROM llm_connections"))

            # Calls through the gateway and key changes through the API, all the while.
            stop = threading.Event()
            side_keys: list[str] = []
            side_failures: list[str] = []

            def change_side_key() -> None:
                with server.client() as client:
                    while not stop.is_set():
                        key = f"sk-side-changed-{len(side_keys):04d}"
                        done = client.patch("/api/connections/side", json={"api_key": key})
                        if done.status_code != 200:
                            side_failures.append(done.text)
                            return
                        side_keys.append(key)

            changer = threading.Thread(target=change_side_key)
            with Load(server, "gw") as load:
                changer.start()
                time.sleep(0.3)
                done = rotate(fresh_database, data_dir, "--batch-size", "3")
                time.sleep(0.3)
                stop.set()
                changer.join()
            assert done.returncode == 0, done.stderr
            assert load.failures == [] and load.calls > 20
            assert side_failures == [] and side_keys
            assert re.search(r"re-encrypted (\d+)/\1 rows", done.stderr), done.stderr
            assert "rows under key" in done.stdout
            new, kept = file_keys(data_dir)
            assert kept == old
            new_id = key_id_for(decode_key(new, "new"))
            assert key_ids_in_db(fresh_database) == {new_id}
            after = dict(fresh_database.query("SELECT name, updated_at FROM llm_connections"))
            assert {k: v for k, v in after.items() if k != "side"} == {
                k: v for k, v in stamps.items() if k != "side"
            }

            # The running server reads rows under the new key: a change makes the gateway
            # reload "gw", and an event is signed with the webhook's re-encrypted secret.
            with server.client() as api:
                edited = api.patch("/api/connections/gw", json={"description": "reloaded"})
                assert edited.status_code == 200
                chat(api, "gw")
                connection(api, "after-rotation", fake.url + "/v1")
            wait_for(lambda: len(receiver.at("/hook")) == 1)
            verify(receiver.at("/hook")[0], SECRET)

            dropped = rotate(fresh_database, data_dir, "--drop-old")
            assert dropped.returncode == 0, dropped.stderr
            assert file_keys(data_dir) == [new]
            assert old not in (data_dir / "secret.key").read_text()
        finally:
            server.stop()

        # A restart with only the new key: keys, headers and webhook secrets all still work,
        # and the last key the API set while the rotation ran is the one stored.
        side_fake.api_key = side_keys[-1]
        server = start_server(fresh_database, data_dir, **env)
        try:
            with server.client() as api:
                chat(api, "gw")
                assert fake.requests[-1].headers["x-extra"] == HEADER
                chat(api, "side")
                connection(api, "after-restart", fake.url + "/v1")
            wait_for(lambda: len(receiver.at("/hook")) == 2)
            verify(receiver.at("/hook")[1], SECRET)
            assert old not in server.log() and new not in server.log()
        finally:
            server.stop()


def _fill(db: Database, data_dir: Path, rows: int, secret_key: str | None = None) -> None:
    """Connections made by the service itself, in this process (faster than over HTTP)."""

    async def run() -> None:
        settings = Settings(data_dir=data_dir, database_url=db.url, secret_key=secret_key)
        service = await open_service(settings)
        try:
            for n in range(rows):
                await service.registry.create(
                    ConnectionCreate(
                        name=f"bulk-{n}",
                        connection_type="openai",
                        model_name="gpt-4o",
                        api_key=f"sk-bulk-{n:05d}",
                        extra_headers={"X-Org-Secret": f"org-{n:05d}"},
                    )
                )
        finally:
            await service.close()

    asyncio.run(run())


def _keys_of_bulk(
    db: Database, data_dir: Path, secret_key: str | None = None
) -> list[tuple[str, str, str]]:
    """Every bulk connection's name, key and header value, decrypted by a fresh service."""

    async def run() -> list[tuple[str, str, str]]:
        settings = Settings(data_dir=data_dir, database_url=db.url, secret_key=secret_key)
        service = await open_service(settings)
        try:
            page = await service.registry.find(ConnectionFilters(), limit=1000)
            found = []
            for item in page.items:
                _, target = await service.registry.target(str(item.id))
                key = target.api_key.reveal() if target.api_key else ""
                found.append((item.name, key, target.extra_headers["X-Org-Secret"].reveal()))
            return sorted(found)
        finally:
            await service.close()

    return asyncio.run(run())


def test_an_interrupted_rotation_is_finished_by_the_next_run(
    fresh_database: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    rows = 300
    _fill(fresh_database, data_dir, rows)
    (old,) = file_keys(data_dir)
    old_id = key_id_for(decode_key(old, "old"))

    # One row per transaction, killed as soon as the first batch is reported.
    command = [sys.executable, "-m", "ump_llm_connections", "rotate-key"]
    killed = subprocess.Popen(
        [*command, "--batch-size", "1", "--database-url", fresh_database.url],
        env=cli_env(data_dir),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert killed.stderr is not None
    for line in killed.stderr:
        if line.startswith("re-encrypted "):
            break
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed.stderr.close()
    new, kept = file_keys(data_dir)
    assert kept == old
    new_id = key_id_for(decode_key(new, "new"))
    ids = [
        key_id_of(key)
        for (key,) in fresh_database.query("SELECT api_key_encrypted FROM llm_connections")
    ]
    assert ids.count(new_id) >= 1 and ids.count(old_id) >= 1, "not interrupted mid-way"

    refused = rotate(fresh_database, data_dir, "--drop-old")
    assert refused.returncode == 2
    assert f"under key {old_id}" in refused.stderr and "rotate-key` to finish" in refused.stderr

    finished = rotate(fresh_database, data_dir)
    assert finished.returncode == 0, finished.stderr
    assert f"finishing the rotation to key {new_id}" in finished.stderr
    assert file_keys(data_dir) == [new, old]  # no third key
    assert key_ids_in_db(fresh_database) == {new_id}
    audited = fresh_database.query(
        "SELECT token_name, target_type, target_id FROM llm_audit_log WHERE action = 'key.rotate'"
    )
    assert audited == [("cli", "server_key", new_id)]  # the killed run wrote no row

    assert rotate(fresh_database, data_dir, "--drop-old").returncode == 0
    assert file_keys(data_dir) == [new]
    expected = sorted((f"bulk-{n}", f"sk-bulk-{n:05d}", f"org-{n:05d}") for n in range(rows))
    assert _keys_of_bulk(fresh_database, data_dir) == expected


def test_keys_from_the_environment(fresh_database: Database, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    old, new = generate_key(), generate_key()
    old_id, new_id = key_id_for(decode_key(old, "old")), key_id_for(decode_key(new, "new"))
    _fill(fresh_database, data_dir, 2, secret_key=old)

    nothing = rotate(fresh_database, data_dir, UMP_SECRET_KEY=old)
    assert nothing.returncode == 0
    assert "UMP_SECRET_KEY is set" in nothing.stderr
    assert "UMP_PREVIOUS_SECRET_KEYS=<old>" in nothing.stderr
    assert rotate(fresh_database, data_dir, "--new-key", new, UMP_SECRET_KEY=old).returncode == 2
    lacking = rotate(fresh_database, data_dir, UMP_SECRET_KEY=new)
    assert lacking.returncode == 2 and "UMP_PREVIOUS_SECRET_KEYS" in lacking.stderr

    both = {"UMP_SECRET_KEY": new, "UMP_PREVIOUS_SECRET_KEYS": old}
    early = rotate(fresh_database, data_dir, "--drop-old", **both)
    assert early.returncode == 2 and f"under key {old_id}" in early.stderr
    done = rotate(fresh_database, data_dir, **both)
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 2 rows" in done.stdout and "2 connections" in done.stdout
    assert key_ids_in_db(fresh_database) == {new_id}
    later = rotate(fresh_database, data_dir, "--drop-old", **both)
    assert later.returncode == 0 and "remove UMP_PREVIOUS_SECRET_KEYS" in later.stdout
    assert not (data_dir / "secret.key").exists()
    for output in (nothing, lacking, early, done, later):
        assert old not in output.stdout + output.stderr
        assert new not in output.stdout + output.stderr
    assert _keys_of_bulk(fresh_database, data_dir, secret_key=new) == [
        ("bulk-0", "sk-bulk-00000", "org-00000"),
        ("bulk-1", "sk-bulk-00001", "org-00001"),
    ]
