"""Webhooks over HTTP: CRUD and validation, secrets kept secret, signed deliveries to a real
receiver, retries with backoff logged attempt by attempt, and no waiting on a slow receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.conftest import Database, Server, start_server
from tests.upstreams.base import FakeUpstream
from ump_llm_connections.domain.events import EVENT_TYPES

SECRET = "whsec-test-" + "k" * 20 + "-tail"  # 36 characters


@dataclass
class Hit:
    path: str
    headers: dict[str, str]  # lower-case names
    raw: bytes
    received_at: float

    @property
    def body(self) -> Any:
        return orjson.loads(self.raw)


class Receiver(FakeUpstream):
    """A webhook receiver on 127.0.0.1: records every POST, answers ``statuses`` in order
    (then 200), or never answers while ``hang`` is set."""

    def __init__(self) -> None:
        super().__init__(api_key=None)
        self.hits: list[Hit] = []
        self.statuses: list[int] = []
        self.hang = False

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.hits.append(Hit(request.path, headers, raw, time.time()))
        if self.hang:
            await asyncio.sleep(3600)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    def error_response(self, status: int, message: str) -> web.Response:
        return self.json({"error": message}, status)

    def authorized(self, request: web.Request) -> bool:
        return True

    def at(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def hooks(api: httpx.Client) -> Iterator[httpx.Client]:
    """The API client; afterwards every webhook is deleted through the API, so the server stops
    delivering to receivers that are gone."""
    yield api
    _delete_all(api)


def _delete_all(client: httpx.Client) -> None:
    for item in client.get("/api/webhooks").json()["items"]:
        assert client.delete(f"/api/webhooks/{item['id']}").status_code == 204


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def webhook(client: httpx.Client, url: str, events: list[str], **fields: Any) -> dict[str, Any]:
    response = client.post("/api/webhooks", json={"url": url, "events": events, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def connection(client: httpx.Client, name: str) -> dict[str, Any]:
    body = {"name": name, "connection_type": "local", "model_name": "llama3", "is_active": False}
    response = client.post("/api/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(client: httpx.Client, webhook_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/webhooks/{webhook_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def verify(hit: Hit, secret: str) -> None:
    """What a receiver does: recompute the signature over ``<timestamp>.<raw body>``."""
    timestamp = hit.headers["x-ump-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + hit.raw, hashlib.sha256)
    signature = hit.headers["x-ump-signature"]
    assert hmac.compare_digest(signature, f"sha256={expected.hexdigest()}")
    assert abs(int(timestamp) - hit.received_at) < 60


def test_webhook_crud_and_validation(hooks: httpx.Client, receiver: Receiver) -> None:
    created = webhook(
        hooks, f"{receiver.url}/hook", ["connection.created"], description="to the CI bot"
    )
    assert created["secret"] and len(created["secret"]) >= 32  # generated
    assert created["has_secret"] is True
    assert created["secret_mask"] == "…" + created["secret"][-4:]
    assert created["events"] == ["connection.created"]
    assert created["is_active"] is True and created["description"] == "to the CI bot"
    given = webhook(hooks, f"{receiver.url}/all", ["*"], secret=SECRET)
    assert given["secret"] == SECRET

    listed = hooks.get("/api/webhooks").json()
    assert listed["total"] == 2
    assert [item["id"] for item in listed["items"]] == [created["id"], given["id"]]
    one = hooks.get(f"/api/webhooks/{created['id']}").json()
    assert "secret" not in one
    assert one == {k: v for k, v in created.items() if k != "secret"}
    assert all("secret" not in item for item in listed["items"])

    def refused(body: dict[str, Any], field: str) -> None:
        response = hooks.post("/api/webhooks", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["type"] == "validation_error"
        assert error["field"] == field, error

    good = {"url": f"{receiver.url}/x", "events": ["connection.created"]}
    refused({**good, "url": "ftp://example.com/hook"}, "url")
    refused({**good, "url": "not a url"}, "url")
    refused({**good, "url": "https://user:pw@example.com/hook"}, "url")
    refused({**good, "events": ["connection.exploded"]}, "events.0")
    refused({**good, "events": ["connection.created", "nope"]}, "events.1")
    refused({**good, "events": []}, "events")
    refused({**good, "events": "connection.created"}, "events")
    refused({**good, "events": ["*", "connection.created"]}, "events")
    refused({**good, "secret": "too-short"}, "secret")
    refused({**good, "secret": "x" * 257}, "secret")
    refused({**good, "colour": "red"}, "colour")
    refused({"events": ["*"]}, "url")
    short = hooks.post("/api/webhooks", json={**good, "secret": "too-short-secret"[:15]})
    assert "too-short-secre" not in short.text  # a rejected secret is not echoed

    missing = str(uuid.uuid4())
    for path in (f"/api/webhooks/{missing}", "/api/webhooks/nonsense"):
        response = hooks.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found"
    assert hooks.delete(f"/api/webhooks/{missing}").status_code == 404
    assert hooks.get(f"/api/webhooks/{missing}/deliveries").status_code == 404
    bad_limit = hooks.get(f"/api/webhooks/{created['id']}/deliveries", params={"limit": 0})
    assert bad_limit.status_code == 422 and bad_limit.json()["error"]["field"] == "limit"
    assert deliveries(hooks, created["id"]) == {"items": [], "total": 0, "limit": 50, "offset": 0}

    assert hooks.delete(f"/api/webhooks/{created['id']}").status_code == 204
    assert hooks.get(f"/api/webhooks/{created['id']}").status_code == 404
    assert hooks.get("/api/webhooks").json()["total"] == 1


def test_the_event_names_a_webhook_takes_are_in_the_openapi_document(api: httpx.Client) -> None:
    """A client (the web UI's checkboxes) offers the names from the schema, not a copy of them."""
    schema = api.get("/openapi.json").json()["components"]["schemas"]["WebhookCreate"]
    offered = schema["properties"]["events"]["items"]["enum"]
    assert offered == [*EVENT_TYPES, "*"]
    for name in offered:
        body = {"url": "http://127.0.0.1:9/hook", "events": [name]}
        created = api.post("/api/webhooks", json=body)
        assert created.status_code == 201, created.text
        assert api.delete(f"/api/webhooks/{created.json()['id']}").status_code == 204


def test_connection_created_is_delivered_signed_to_subscribers_only(
    hooks: httpx.Client, receiver: Receiver
) -> None:
    wanted = webhook(hooks, f"{receiver.url}/created", ["connection.created"], secret=SECRET)
    webhook(hooks, f"{receiver.url}/deleted", ["connection.deleted"])
    webhook(hooks, f"{receiver.url}/all", ["*"])
    webhook(hooks, f"{receiver.url}/off", ["*"], is_active=False)

    made = connection(hooks, "Hooked")
    wait_for(lambda: bool(receiver.at("/created")) and bool(receiver.at("/all")))
    time.sleep(0.3)  # what was going to arrive with them has arrived
    (hit,) = receiver.at("/created")
    verify(hit, SECRET)
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["x-ump-event"] == "connection.created"
    body = hit.body
    assert body["type"] == "connection.created"
    assert body["id"].startswith("evt_") and hit.headers["x-ump-delivery"] == body["id"]
    assert body["data"]["name"] == "Hooked"
    assert body["data"]["connection_id"] == made["id"]
    assert "created_at" in body
    assert receiver.at("/deleted") == []
    assert receiver.at("/off") == []
    assert [
        h.body["id"] for h in receiver.at("/all") if h.body["type"] == "connection.created"
    ] == [body["id"]]
    tampered = Hit(hit.path, hit.headers, hit.raw.replace(b"Hooked", b"Hacked"), hit.received_at)
    with pytest.raises(AssertionError):
        verify(tampered, SECRET)

    wait_for(lambda: deliveries(hooks, wanted["id"])["total"] == 1)
    (logged,) = deliveries(hooks, wanted["id"])["items"]
    assert logged["event_id"] == body["id"] and logged["event_type"] == "connection.created"
    assert logged["attempt"] == 1 and logged["success"] is True
    assert logged["status_code"] == 200 and logged["error"] is None
    assert logged["duration_ms"] >= 0

    assert hooks.delete(f"/api/connections/{made['id']}").status_code == 204
    wait_for(lambda: bool(receiver.at("/deleted")))
    (gone,) = receiver.at("/deleted")
    assert gone.body["type"] == "connection.deleted"
    assert gone.body["data"]["name"] == "Hooked"


def test_secret_is_never_shown_logged_or_stored_in_plain_text(
    hooks: httpx.Client, server: Server, receiver: Receiver
) -> None:
    created = webhook(hooks, f"{receiver.url}/hook", ["*"], secret=SECRET)
    generated = webhook(hooks, f"{receiver.url}/other", ["connection.created"])["secret"]
    connection(hooks, "Secretive")
    wait_for(lambda: len(receiver.at("/hook")) >= 1 and len(receiver.at("/other")) == 1)
    verify(receiver.at("/other")[0], generated)
    wait_for(lambda: deliveries(hooks, created["id"])["total"] >= 1)

    shown = [
        hooks.get("/api/webhooks").text,
        hooks.get(f"/api/webhooks/{created['id']}").text,
        hooks.get(f"/api/webhooks/{created['id']}/deliveries").text,
    ]
    for secret in (SECRET, generated):
        assert all(secret not in text for text in shown)
        assert secret not in server.log()
        for hit in receiver.hits:
            assert secret.encode() not in hit.raw
            assert all(secret not in value for value in hit.headers.values())
    stored = server.db.query("SELECT * FROM llm_webhooks")
    assert len(stored) == 2
    rows = server.db.query("SELECT * FROM llm_webhooks") + server.db.query(
        "SELECT * FROM llm_webhook_deliveries"
    )
    dump = repr(rows)
    assert SECRET not in dump and generated not in dump
    for (encrypted,) in server.db.query("SELECT secret_encrypted FROM llm_webhooks"):
        assert encrypted.startswith("v1.")


def test_a_hanging_receiver_does_not_slow_the_api(hooks: httpx.Client, receiver: Receiver) -> None:
    receiver.hang = True
    webhook(hooks, f"{receiver.url}/slow", ["connection.created", "connection.deleted"])
    started = time.monotonic()
    made = connection(hooks, "Quick")
    assert time.monotonic() - started < 1.0
    wait_for(lambda: len(receiver.hits) == 1)  # the delivery is under way, and hangs
    started = time.monotonic()
    assert hooks.delete(f"/api/connections/{made['id']}").status_code == 204
    connection(hooks, "Quick again")
    assert hooks.get("/api/webhooks").status_code == 200
    assert time.monotonic() - started < 1.0


@pytest.fixture
def fast_server(fresh_database: Database, tmp_path: Path) -> Iterator[Server]:
    """A server of its own whose webhook retries wait milliseconds, not seconds."""
    running = start_server(fresh_database, tmp_path / "data", UMP_WEBHOOK_BACKOFF_S="0.01")
    yield running
    running.stop()


def test_failed_deliveries_are_retried_with_backoff_and_every_attempt_logged(
    fast_server: Server, receiver: Receiver
) -> None:
    with fast_server.client() as client:
        flaky = webhook(client, f"{receiver.url}/flaky", ["connection.created"], secret=SECRET)
        receiver.statuses = [500, 500]
        connection(client, "Retried")
        wait_for(lambda: deliveries(client, flaky["id"])["total"] == 3)
        hits = receiver.at("/flaky")
        assert len(hits) == 3
        assert len({hit.headers["x-ump-delivery"] for hit in hits}) == 1  # one event, 3 tries
        for hit in hits:
            verify(hit, SECRET)
        items = deliveries(client, flaky["id"])["items"]  # newest first
        assert [i["attempt"] for i in items] == [3, 2, 1]
        assert [i["success"] for i in items] == [True, False, False]
        assert [i["status_code"] for i in items] == [200, 500, 500]
        assert [i["error"] for i in items] == [None, "HTTP 500", "HTTP 500"]
        assert len({i["event_id"] for i in items}) == 1
        page = deliveries(client, flaky["id"], limit=2, offset=1)
        assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1
        assert [i["attempt"] for i in page["items"]] == [2, 1]
        _delete_all(client)

        # A receiver that always fails gets five attempts, then no more.
        broken = webhook(client, f"{receiver.url}/broken", ["connection.created"])
        receiver.statuses = [503] * 10
        connection(client, "Given up")
        wait_for(lambda: deliveries(client, broken["id"])["total"] == 5)
        time.sleep(0.5)
        assert len(receiver.at("/broken")) == 5
        items = deliveries(client, broken["id"])["items"]
        assert [i["attempt"] for i in items] == [5, 4, 3, 2, 1]
        assert not any(i["success"] for i in items)
        assert "gave up" in fast_server.log()
        _delete_all(client)

        # Nothing answering at all: a network error, logged as such.
        dead = webhook(client, "http://127.0.0.1:9/nobody", ["connection.created"])
        connection(client, "Unanswered")
        wait_for(lambda: deliveries(client, dead["id"])["total"] == 5)
        errors = {i["error"] for i in deliveries(client, dead["id"])["items"]}
        assert all(e and "HTTP" not in e for e in errors), errors
        _delete_all(client)
    log = fast_server.log()
    assert SECRET not in log
    assert "Traceback" not in log


def test_shutdown_cancels_pending_deliveries_cleanly(
    fast_server: Server, receiver: Receiver
) -> None:
    receiver.hang = True
    with fast_server.client() as client:
        webhook(client, f"{receiver.url}/hang", ["connection.created"])
        connection(client, "Pending")
        wait_for(lambda: len(receiver.hits) == 1)
    started = time.monotonic()
    fast_server.stop()
    assert fast_server.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises it
    assert time.monotonic() - started < 8  # the grace period, not the 10 s request timeout
    log = fast_server.log()
    assert "1 webhook deliveries cancelled at shutdown" in log
    for trouble in ("Traceback", "Task was destroyed", "Unclosed", "never retrieved"):
        assert trouble not in log, log
