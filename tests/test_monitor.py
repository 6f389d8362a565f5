"""The health monitor in a running server: probes, the state machine, events, shutdown."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Database, Server, start_server
from tests.test_webhooks import SECRET, Receiver, verify, wait_for, webhook
from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI

KEY = "sk-monitor-test-key-000000000000"


@dataclass
class Watched:
    server: Server
    client: httpx.Client
    fake: FakeOpenAI
    receiver: Receiver

    def add(self, name: str = "watched", **fields: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "connection_type": "openai",
            "base_url": f"{self.fake.url}/v1",
            "model_name": "fake-model",
            "api_key": KEY,
            "max_retries": 0,
            "timeout": 1,
            **fields,
        }
        response = self.client.post("/api/connections", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def state(self, connection: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = self.client.get(f"/api/connections/{connection['id']}").json()
        return state

    def until(self, connection: dict[str, Any], check: Callable[[dict[str, Any]], bool]) -> None:
        wait_for(lambda: check(self.state(connection)), timeout=15)


@pytest.fixture
def watched(fresh_database: Database, tmp_path: Path) -> Iterator[Watched]:
    server = start_server(
        fresh_database,
        tmp_path / "data",
        UMP_HEALTH_INTERVAL_S="0.3",
        UMP_HEALTH_FAILURE_THRESHOLD="3",
        UMP_HEALTH_LATENCY_THRESHOLD_MS="150",
        UMP_WEBHOOK_BACKOFF_S="0.05",
    )
    try:
        with FakeOpenAI(api_key=KEY) as fake, Receiver() as receiver, server.client() as client:
            yield Watched(server, client, fake, receiver)
    finally:
        server.stop()


def test_failing_upstream_is_deactivated_and_a_signed_webhook_says_so(watched: Watched) -> None:
    hook = webhook(
        watched.client,
        f"{watched.receiver.url}/hooks",
        ["connection.deactivated", "connection.status_changed"],
        secret=SECRET,
    )
    connection = watched.add()
    watched.until(connection, lambda s: s["status"] == "active")  # the first probe passed
    watched.fake.behaviour = Behaviour.server_error
    watched.until(connection, lambda s: not s["is_active"])
    state = watched.state(connection)
    assert state["status"] == "error"
    assert state["deactivated_by_health"] is True
    assert state["consecutive_failures"] == 3
    assert state["last_error"].startswith("500 from 127.0.0.1")

    def deactivation() -> list[Any]:
        return [
            h for h in watched.receiver.hits if h.headers["x-ump-event"] == "connection.deactivated"
        ]

    wait_for(lambda: bool(deactivation()))
    hit = deactivation()[0]
    verify(hit, SECRET)
    assert hit.body["data"]["reason"] == "health"
    assert hit.body["data"]["name"] == "watched"
    changes = [
        h.body["data"]
        for h in watched.receiver.hits
        if h.headers["x-ump-event"] == "connection.status_changed"
    ]
    assert any(c["old_status"] == "active" and c["status"] == "error" for c in changes)
    checks = watched.client.get(f"/api/connections/{connection['id']}/health-checks").json()
    assert {c["kind"] for c in checks["items"]} == {"scheduled"}
    assert hook["events"] == ["connection.deactivated", "connection.status_changed"]
    # The gateway stopped serving it at once.
    refused = watched.client.post(
        "/v1/chat/completions",
        json={"model": "watched", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert refused.json()["error"]["code"] == "connection_inactive"


def test_cheap_probes_spend_no_tokens_and_generate_probes_do(watched: Watched) -> None:
    cheap = watched.add("cheap")
    watched.until(cheap, lambda s: s["last_tested_at"] is not None)
    time.sleep(1)
    assert watched.fake.requests
    assert {r.path for r in watched.fake.requests} == {"/v1/models"}

    watched.fake.requests.clear()
    generating = watched.add("generating", probe_mode="generate")
    watched.until(generating, lambda s: s["last_tested_at"] is not None)
    chats = [r for r in watched.fake.requests if r.path == "/v1/chat/completions"]
    assert chats
    assert chats[0].body["max_tokens"] == 1


def test_rate_limits_never_deactivate_and_auth_is_definite(watched: Watched) -> None:
    busy = watched.add("busy")
    watched.until(busy, lambda s: s["status"] == "active")
    watched.fake.behaviour = Behaviour.rate_limited
    time.sleep(2.5)  # several probes, all 429
    state = watched.state(busy)
    assert (state["is_active"], state["status"], state["consecutive_failures"]) == (
        True,
        "active",
        0,
    )
    errors = watched.client.get(f"/api/connections/{busy['id']}/health-checks").json()
    assert "rate_limited" in {c["error_kind"] for c in errors["items"]}

    watched.fake.behaviour = Behaviour.normal
    locked = watched.add("locked", api_key="sk-wrong-key-000000000000")
    watched.until(locked, lambda s: not s["is_active"])
    assert watched.state(locked)["deactivated_by_health"] is True
    checks = watched.client.get(f"/api/connections/{locked['id']}/health-checks").json()
    assert checks["total"] == 1  # one definite failure was enough


def test_auto_reactivate_and_manual_deactivation(watched: Watched) -> None:
    comeback = watched.add("comeback", auto_reactivate=True)
    stays = watched.add("stays")  # no auto_reactivate
    watched.until(comeback, lambda s: s["status"] == "active")
    watched.until(stays, lambda s: s["status"] == "active")
    watched.fake.behaviour = Behaviour.unauthorized
    watched.until(comeback, lambda s: not s["is_active"])
    watched.until(stays, lambda s: not s["is_active"])
    manual = watched.add("manual", auto_reactivate=True)
    watched.client.post(f"/api/connections/{manual['id']}/deactivate")
    watched.fake.behaviour = Behaviour.normal
    watched.until(comeback, lambda s: s["is_active"] and s["status"] == "active")
    time.sleep(1.5)
    assert watched.state(stays)["is_active"] is False  # not set to come back
    manual_state = watched.state(manual)
    assert manual_state["is_active"] is False  # a person's decision is never undone
    assert manual_state["last_tested_at"] is None  # and it is not even probed


def test_latency_threshold_raises_an_event(watched: Watched) -> None:
    webhook(
        watched.client,
        f"{watched.receiver.url}/slow",
        ["connection.threshold_exceeded"],
        secret=SECRET,
    )
    watched.fake.behaviour = Behaviour.slow_first_token
    watched.fake.delay = 0.3
    slow = watched.add("slow")
    wait_for(lambda: bool(watched.receiver.at("/slow")))
    event = watched.receiver.at("/slow")[0].body["data"]
    assert (event["name"], event["metric"], event["threshold"]) == ("slow", "latency_ms", 150)
    assert event["value"] > 150
    time.sleep(1)
    assert len(watched.receiver.at("/slow")) == 1  # once per crossing, not on every probe
    assert slow["id"]


def test_old_checks_are_pruned(fresh_database: Database, tmp_path: Path) -> None:
    first = start_server(fresh_database, tmp_path / "data", UMP_HEALTH_MONITOR="false")
    try:
        with first.client() as client:
            created = client.post(
                "/api/connections",
                json={
                    "name": "old",
                    "connection_type": "local",
                    "model_name": "m",
                    "is_active": False,
                },
            ).json()
    finally:
        first.stop()
    old = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m-%d %H:%M:%S")
    connection_id = (
        created["id"] if fresh_database.backend == "postgresql" else created["id"].replace("-", "")
    )
    fresh_database.execute(
        "INSERT INTO llm_connection_health_checks (connection_id, created_at, kind, success) "
        f"VALUES ('{connection_id}', '{old}', 'scheduled', true)"
    )
    second = start_server(
        fresh_database,
        tmp_path / "data",
        UMP_HEALTH_INTERVAL_S="0.2",
        UMP_HEALTH_RETENTION_DAYS="30",
    )
    try:
        wait_for(
            lambda: (
                fresh_database.query("SELECT count(*) FROM llm_connection_health_checks") == [(0,)]
            )
        )
        assert "pruned 1 health checks" in second.log()
    finally:
        second.stop()


def test_monitor_stops_cleanly(watched: Watched) -> None:
    for index in range(5):
        watched.add(f"c{index}")
    watched.fake.behaviour = Behaviour.hang  # probes in flight when the stop comes
    time.sleep(1)
    process = watched.server.process
    process.send_signal(signal.SIGTERM)
    # Uvicorn shuts down gracefully, then re-raises the signal: SIGTERM is the exit status.
    assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    log = watched.server.log()
    assert "Traceback" not in log
    assert "Task was destroyed" not in log
    assert "Application shutdown complete" in log


def test_error_rate_threshold_raises_an_event(fresh_database: Database, tmp_path: Path) -> None:
    server = start_server(
        fresh_database,
        tmp_path / "data",
        UMP_HEALTH_INTERVAL_S="0.3",
        UMP_HEALTH_FAILURE_THRESHOLD="50",
        UMP_HEALTH_ERROR_RATE_THRESHOLD="0.5",
    )
    try:
        with FakeOpenAI(api_key=KEY) as fake, Receiver() as receiver, server.client() as client:
            watched = Watched(server, client, fake, receiver)
            webhook(
                client, f"{receiver.url}/rate", ["connection.threshold_exceeded"], secret=SECRET
            )
            flaky = watched.add("flaky")
            watched.until(flaky, lambda s: s["status"] == "active")
            fake.behaviour = Behaviour.server_error
            wait_for(lambda: bool(receiver.at("/rate")), timeout=15)
            event = receiver.at("/rate")[0].body["data"]
            assert (event["name"], event["metric"], event["threshold"]) == (
                "flaky",
                "error_rate",
                0.5,
            )
            assert event["value"] > 0.5
    finally:
        server.stop()


def test_a_probe_that_cannot_be_built_is_not_an_upstream_failure(watched: Watched) -> None:
    good = watched.add("good")
    damaged = watched.add("damaged")
    # Move one row's sealed key onto another: it no longer opens (it is bound to its row).
    db = watched.server.db
    db.execute(
        "UPDATE llm_connections SET api_key_encrypted = "
        "(SELECT api_key_encrypted FROM llm_connections WHERE name = 'good') "
        "WHERE name = 'damaged'"
    )
    watched.until(
        damaged, lambda s: s["last_tested_at"] is not None and s["last_error"] is not None
    )
    state = watched.state(damaged)
    assert (state["is_active"], state["consecutive_failures"]) == (True, 0)
    assert "the probe could not be built" in state["last_error"]
    checks = watched.client.get(f"/api/connections/{damaged['id']}/health-checks").json()
    assert {c["error_kind"] for c in checks["items"] if not c["success"]} == {"probe_error"}
    watched.until(good, lambda s: s["status"] == "active")  # the others go on
    assert "Traceback" not in watched.server.log()


def test_one_replica_at_a_time_runs_the_monitor(fresh_database: Database, tmp_path: Path) -> None:
    env = {"UMP_HEALTH_INTERVAL_S": "0.2"}
    first = start_server(fresh_database, tmp_path / "data", **env)
    wait_for(lambda: "health monitor: this replica probes" in first.log())
    second = start_server(fresh_database, tmp_path / "data", **env)
    try:
        if fresh_database.backend == "postgresql":
            wait_for(lambda: "another replica probes; this one stands by" in second.log())
            assert "this replica probes" not in second.log()
            first.stop()  # the lock goes with the replica: the other takes over
            wait_for(lambda: "health monitor: this replica probes" in second.log())
        else:  # SQLite: one file, one process at a time in practice: no lease to share
            wait_for(lambda: "health monitor: this replica probes" in second.log())
    finally:
        first.stop()
        second.stop()
