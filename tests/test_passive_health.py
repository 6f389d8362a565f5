"""Passive health: failed gateway calls move a connection's health, not only probes.

A server that still lists its models while every chat call fails (a crashed model, a removed
deployment) passes the cheap probe; the gateway's own failures must catch it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Database, start_server
from tests.test_monitor import KEY, Watched
from tests.test_webhooks import Receiver
from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI


def call(client: httpx.Client, model: str) -> httpx.Response:
    return client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )


def kinds(client: httpx.Client, connection: dict[str, Any]) -> list[str]:
    checks = client.get(f"/api/connections/{connection['id']}/health-checks").json()
    return [c["kind"] for c in checks["items"]]


def serve(database: Database, folder: Path, **env: str) -> Iterator[Watched]:
    server = start_server(database, folder, UMP_HEALTH_FAILURE_THRESHOLD="3", **env)
    try:
        with FakeOpenAI(api_key=KEY) as fake, Receiver() as receiver, server.client() as client:
            yield Watched(server, client, fake, receiver)
    finally:
        server.stop()


@pytest.fixture
def watched(fresh_database: Database, tmp_path: Path) -> Iterator[Watched]:
    yield from serve(fresh_database, tmp_path / "data", UMP_HEALTH_INTERVAL_S="0.3")


@pytest.fixture
def unwatched(fresh_database: Database, tmp_path: Path) -> Iterator[Watched]:
    """The scheduled monitor off: passive checks must work without it."""
    yield from serve(fresh_database, tmp_path / "data", UMP_HEALTH_MONITOR="false")


def test_chat_failures_behind_a_working_model_list_deactivate(watched: Watched) -> None:
    connection = watched.add("crashed", auto_reactivate=True)
    watched.until(connection, lambda s: s["status"] == "active")  # the cheap probe passed
    watched.fake.models.remove("fake-model")  # /models answers, every chat call is a 404
    for _ in range(3):
        assert call(watched.client, "crashed").status_code == 502
    watched.until(connection, lambda s: not s["is_active"])
    state = watched.state(connection)
    assert state["status"] == "error"
    assert state["deactivated_by_health"] is True
    assert "404 from 127.0.0.1" in state["last_error"]  # the passive check or the probe after it
    assert "passive" in kinds(watched.client, connection)

    # Probes now send a prompt: a cheap probe would pass and bring it back (auto_reactivate).
    watched.fake.requests.clear()
    time.sleep(3)  # several probes at 4 x 0.3 s
    state = watched.state(connection)
    assert state["is_active"] is False
    probes = [r.path for r in watched.fake.requests]
    assert probes
    assert set(probes) == {"/v1/chat/completions"}

    watched.fake.models.append("fake-model")  # the model is back: a generated answer heals it
    watched.until(connection, lambda s: s["is_active"] and s["status"] == "active")


def test_failures_in_a_row_mark_error_probe_at_once_and_deactivate(unwatched: Watched) -> None:
    connection = unwatched.add("flaky")
    unwatched.fake.behaviour = Behaviour.rate_limited  # load, not death: never counts
    for _ in range(5):
        assert call(unwatched.client, "flaky").status_code == 429
    unwatched.fake.behaviour = Behaviour.server_error
    for _ in range(2):
        assert call(unwatched.client, "flaky").status_code == 502
    time.sleep(0.5)
    assert unwatched.state(connection)["status"] == "unknown"
    assert kinds(unwatched.client, connection) == []

    unwatched.fake.requests.clear()
    assert call(unwatched.client, "flaky").status_code == 502  # the third in a row
    unwatched.until(connection, lambda s: s["consecutive_failures"] == 2)
    state = unwatched.state(connection)
    assert (state["status"], state["is_active"]) == ("error", True)
    assert sorted(kinds(unwatched.client, connection)) == ["passive", "scheduled"]
    # The probe sent at once was a real prompt, not a model list.
    probes = [r for r in unwatched.fake.requests if r.body and r.body.get("max_tokens") == 1]
    assert probes
    assert probes[0].path == "/v1/chat/completions"

    for _ in range(3):  # three more: the threshold is reached and it is taken out
        assert call(unwatched.client, "flaky").status_code == 502
    unwatched.until(connection, lambda s: not s["is_active"])
    assert unwatched.state(connection)["deactivated_by_health"] is True
    refused = call(unwatched.client, "flaky")
    assert refused.json()["error"]["code"] == "connection_inactive"


def test_a_success_resets_the_count(unwatched: Watched) -> None:
    connection = unwatched.add("recovering")
    for _ in range(4):
        unwatched.fake.script = [Behaviour.server_error, Behaviour.server_error]
        assert call(unwatched.client, "recovering").status_code == 502
        assert call(unwatched.client, "recovering").status_code == 502
        assert call(unwatched.client, "recovering").status_code == 200
    time.sleep(0.5)
    assert unwatched.state(connection)["consecutive_failures"] == 0
    assert kinds(unwatched.client, connection) == []
