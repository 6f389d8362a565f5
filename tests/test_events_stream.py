"""``GET /api/events`` against a live server: connection and pool events in order, the ``types``
filter, a member's scope, a client that leaves, a server that stops with a client attached; and
the bus's feeds in process (a reader that falls behind is dropped, not waited for)."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.conftest import Database, Server, start_server
from tests.test_access import Team, connection_body, team, wait_until  # noqa: F401
from tests.test_cli import run as cli
from ump_llm_connections.domain.access import Principal, Role
from ump_llm_connections.events import EventBus

SECRET_KEY = "sk-events-stream-secret-0123456789"
READ_TIMEOUT = httpx.Timeout(10, read=60)  # generous: the machine is slow


@dataclass
class Frame:
    event: str | None = None
    id: str | None = None
    data: Any = None
    comment: str | None = None


class Events:
    """The frames of an open event stream, read one at a time; ``raw`` keeps every line."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()
        self.raw: list[str] = []

    def frame(self) -> Frame | None:
        """The next event or comment; None when the stream has ended."""
        frame = Frame()
        seen = False
        for line in self._lines:
            self.raw.append(line)
            if line == "":
                if seen:
                    return frame
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                frame.comment = value
            elif name == "event":
                frame.event = value
            elif name == "id":
                frame.id = value
            elif name == "data":
                frame.data = orjson.loads(value)
        return frame if seen else None

    def event(self) -> Frame:
        """The next event, past any comment."""
        while True:
            frame = self.frame()
            assert frame is not None, "the stream ended"
            if frame.event is not None:
                return frame

    def about(self, name: str, count: int) -> list[Frame]:
        """The next ``count`` events about the connection or pool called ``name`` (others
        tests' events are skipped)."""
        found: list[Frame] = []
        while len(found) < count:
            frame = self.event()
            if frame.data["data"].get("name") == name:
                found.append(frame)
        return found


@contextlib.contextmanager
def listen(client: httpx.Client, types: str | None = None) -> Iterator[Events]:
    """An open stream, once the server has said it is subscribed."""
    params = {"types": types} if types is not None else {}
    with client.stream("GET", "/api/events", params=params, timeout=READ_TIMEOUT) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = Events(response)
        ready = events.event()
        assert ready.event == "ready" and ready.id is None
        yield events


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def a_connection(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "connection_type": "openai",
        "base_url": "http://127.0.0.1:9/v1",  # never called: no probes on the test servers
        "model_name": "fake-model",
        "api_key": SECRET_KEY,
        **extra,
    }


def test_connection_changes_arrive_in_order(api: httpx.Client) -> None:
    name = unique("events")
    with listen(api) as events:
        made = api.post("/api/connections", json=a_connection(name))
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        assert api.patch(f"/api/connections/{cid}", json={"description": "x"}).status_code == 200
        assert api.post(f"/api/connections/{cid}/deactivate").status_code == 200
        assert api.post(f"/api/connections/{cid}/activate").status_code == 200
        assert api.delete(f"/api/connections/{cid}").status_code == 204
        frames = events.about(name, 5)
    assert [f.event for f in frames] == [
        "connection.created",
        "connection.updated",
        "connection.deactivated",
        "connection.activated",
        "connection.deleted",
    ]
    for frame in frames:
        assert frame.id == frame.data["id"] and frame.id is not None
        assert frame.id.startswith("evt_")
        assert frame.data["type"] == frame.event
        assert frame.data["data"]["connection_id"] == cid
    assert frames[1].data["data"]["changed"] == ["description"]
    assert [f.data["data"]["is_active"] for f in frames[2:4]] == [False, True]
    assert len({f.id for f in frames}) == 5
    assert not any(SECRET_KEY in line for line in events.raw)


def test_the_types_filter_and_pool_events(api: httpx.Client) -> None:
    connection, pool = unique("pooled"), unique("pool")
    with listen(api, types=" pool.created,pool.updated,pool.deleted,pool.created") as events:
        made = api.post("/api/connections", json=a_connection(connection))
        assert made.status_code == 201, made.text
        body = {
            "name": pool,
            "strategy": "priority",
            "members": [{"connection_id": made.json()["id"]}],
        }
        created = api.post("/api/pools", json=body)
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        changed = api.patch(f"/api/pools/{pid}", json={"strategy": "weighted"})
        assert changed.status_code == 200, changed.text
        assert api.delete(f"/api/pools/{pid}").status_code == 204
        assert api.delete(f"/api/connections/{connection}").status_code == 204
        frames = [events.event() for _ in range(3)]  # the connection's own events are not sent
    assert [f.event for f in frames] == ["pool.created", "pool.updated", "pool.deleted"]
    data = [f.data["data"] for f in frames]
    assert [d["strategy"] for d in data] == ["priority", "weighted", "weighted"]
    assert {d["id"] for d in data} == {pid} and {d["name"] for d in data} == {pool}
    assert data[1]["changed"] == ["strategy"]
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["pool.created", "pool.deleted"]}
    made_hook = api.post("/api/webhooks", json=hook)
    assert made_hook.status_code == 201, made_hook.text  # webhooks may ask for them too
    assert api.delete(f"/api/webhooks/{made_hook.json()['id']}").status_code == 204


def test_unknown_types_and_parameters_are_422(api: httpx.Client) -> None:
    for query, field in (
        ({"types": "connection.created,connection.exploded"}, "types"),
        ({"types": " , "}, "types"),
        ({"type": "connection.created"}, "type"),
    ):
        refused = api.get("/api/events", params=query)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["type"] == "validation_error" and error["field"] == field
    assert (
        "connection.exploded"
        in api.get("/api/events", params={"types": "connection.exploded"}).json()["error"][
            "message"
        ]
    )


def test_a_client_that_leaves_is_unsubscribed(api: httpx.Client, server: Server) -> None:
    seen = len(server.log())
    with listen(api, types="connection.deleted"):
        pass  # leaves right after ready
    closed = "closed: the client left (0 open)"
    wait_until(lambda: closed in server.log()[seen:], timeout=30)
    name = unique("after")
    made = api.post("/api/connections", json=a_connection(name))  # nobody to send it to
    assert api.delete(f"/api/connections/{made.json()['id']}").status_code == 204
    with listen(api) as events:  # the next client is served as usual
        made = api.post("/api/connections", json=a_connection(name))
        assert [f.event for f in events.about(name, 1)] == ["connection.created"]
    assert api.delete(f"/api/connections/{made.json()['id']}").status_code == 204


def test_a_member_hears_only_of_what_it_may_see(team: Team) -> None:  # noqa: F811
    mine, theirs, shared = unique("carol-own"), unique("carol-pool"), unique("team-a")
    with (
        team.as_(team.admin) as admin,
        team.as_(team.alice) as alice,
        team.as_(team.carol) as carol,
        listen(admin) as admin_hears,
        listen(alice) as alice_hears,
        listen(carol) as carol_hears,
    ):
        own = carol.post("/api/connections", json=connection_body(team.upstream, mine))
        assert own.status_code == 201, own.text
        members = [{"connection_id": own.json()["id"]}]
        pool = carol.post("/api/pools", json={"name": theirs, "members": members})
        assert pool.status_code == 201, pool.text
        made = admin.post("/api/connections", json=connection_body(team.upstream, shared, team="a"))
        assert made.status_code == 201, made.text
        first = alice_hears.event()  # carol's events, earlier, never reached alice
        assert (first.event, first.data["data"]["name"]) == ("connection.created", shared)
        heard = [
            (f.event, f.data["data"]["name"]) for f in (carol_hears.event(), carol_hears.event())
        ]
        assert heard == [("connection.created", mine), ("pool.created", theirs)]
        everything = [admin_hears.event().data["data"]["name"] for _ in range(3)]
        assert everything == [mine, theirs, shared]
        assert carol.delete(f"/api/pools/{theirs}").status_code == 204
        assert carol.delete(f"/api/connections/{mine}").status_code == 204
        assert admin.delete(f"/api/connections/{shared}").status_code == 204
        gone = alice_hears.event()
        assert (gone.event, gone.data["data"]["name"]) == ("connection.deleted", shared)


def last_event(events: Events, within_s: float = 20) -> Frame:
    """The event that ends a stream no other event reaches; past ``within_s`` (seen at the next
    keepalive) the stream has outlived it."""
    deadline = time.monotonic() + within_s
    while (frame := events.frame()) is not None:
        if frame.event is not None:
            assert events.frame() is None, "the stream went on after its last event"
            return frame
        assert time.monotonic() < deadline, "the stream is still open"
    raise AssertionError("the stream ended without a last event")


def test_a_revoked_or_expired_token_ends_its_stream(team: Team) -> None:  # noqa: F811
    """A token is checked when the stream opens, and again while it stays open: revoked (with
    the CLI, as another replica would) or expired, the stream ends with ``unauthorized``."""
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    with team.as_(team.admin) as admin:
        kept = admin.post("/api/tokens", json={"name": unique("kept"), "role": "member"})
        brief = admin.post(
            "/api/tokens", json={"name": unique("brief"), "role": "member", "expires_at": soon}
        )
        assert kept.status_code == brief.status_code == 201, (kept.text, brief.text)
    with (
        team.as_(team.admin) as admin,
        team.as_(kept.json()["token"]) as member,
        team.as_(brief.json()["token"]) as short,
        listen(admin) as admin_hears,
        listen(member) as member_hears,
        listen(short) as short_hears,
    ):
        gone = last_event(short_hears)  # no event reaches it meanwhile: only its expiry ends it
        assert gone.event == "unauthorized", gone
        assert gone.data["message"].startswith("the token has expired"), gone.data
        revoked = cli(
            "tokens",
            "revoke",
            kept.json()["key_id"],
            "--database-url",
            team.server.db.url,
            data_dir=team.server.data_dir,
        )
        assert revoked.returncode == 0, revoked.stderr
        ended = last_event(member_hears)
        assert (ended.event, ended.data["message"]) == (
            "unauthorized",
            "the token was revoked: reconnect with a valid token",
        )
        name = unique("after")  # the admin's stream lives on
        made = admin.post("/api/connections", json=a_connection(name))
        assert made.status_code == 201, made.text
        assert [f.event for f in admin_hears.about(name, 1)] == ["connection.created"]
        assert admin.delete(f"/api/connections/{name}").status_code == 204
        assert member.get("/api/events").status_code == 401


def test_a_stopping_server_ends_its_streams_at_once(
    fresh_database: Database, tmp_path: Path
) -> None:
    """With an hour of grace for calls in flight, an open stream must not hold the server."""
    server = start_server(
        fresh_database,
        tmp_path / "data",
        UMP_SHUTDOWN_GRACE_S="3600",
        UMP_EVENTS_KEEPALIVE_S="0.2",
        UMP_HEALTH_MONITOR="false",
    )
    try:
        with server.client() as client, listen(client) as events:
            comment = events.frame()
            assert comment is not None and comment.comment == "keepalive"
            server.process.send_signal(signal.SIGTERM)
            frames = []
            while (frame := events.frame()) is not None:
                frames.append(frame)
        last = [f for f in frames if f.event is not None]
        assert [f.event for f in last] == ["shutdown"]
        assert "shutting down" in last[0].data["message"]
        # Within a minute, not the hour of grace; uvicorn re-raises the signal once stopped.
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
        log = server.log()
        assert "closed: shutdown (0 open)" in log and "Application shutdown complete" in log
        assert "Traceback" not in log
    finally:
        server.stop()


async def test_a_feed_that_falls_behind_is_dropped_not_waited_for() -> None:
    bus = EventBus()
    await bus.start()
    slow = bus.feed(lambda _: True, limit=3)
    fast = bus.feed(lambda _: True, limit=3)
    member = Principal(token_id=uuid.uuid4(), name="m", role=Role.member, team="a")
    scoped = bus.feed(lambda e: e.heard_by(member))
    read: list[int] = []
    for n in range(6):
        bus.publish("connection.created", {"n": n}, ("someone", "a" if n % 2 else "b"))
        event = await fast.next()
        assert event is not None
        read.append(event.data["n"])
    assert read == list(range(6))
    assert slow.overflowed and slow.ended and bus.feed_count == 2
    assert [e.data["n"] for e in [await slow.next() for _ in range(3)] if e] == [0, 1, 2]
    assert await slow.next() is None  # the rest was dropped: the reader is told, not waited for
    scoped.close()
    assert bus.feed_count == 1
    assert [e.data["n"] for e in [await scoped.next() for _ in range(3)] if e] == [1, 3, 5]
    assert await scoped.next() is None
    await bus.stop()
    assert fast.ended and bus.feed_count == 0 and await fast.next() is None
    assert bus.feed(lambda _: True).ended  # a feed opened while stopping starts ended
