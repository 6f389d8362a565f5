"""``GET /api/connections/activity``: the list rows' last latency and calls today, on both
backends, scoped like the rest of the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import Server
from tests.test_access import Team, connection_body, team, wait_until
from tests.upstreams.openai import FakeOpenAI

__all__ = ["team"]  # the fixture, shared with tests/test_access.py

KEY = "sk-access-upstream-key-0123456789"
CHAT = {"model": "", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 5}


def call(client: httpx.Client, name: str) -> None:
    answer = client.post("/v1/chat/completions", json={**CHAT, "model": name})
    assert answer.status_code == 200, answer.text


def activity(client: httpx.Client, *ids: str) -> dict[str, dict[str, Any]]:
    response = client.get("/api/connections/activity", params={"id": list(ids)})
    assert response.status_code == 200, response.text
    return {item["connection_id"]: item for item in response.json()["items"]}


def usage_rows(server: Server, cid: str) -> int:
    key = uuid.UUID(cid).hex if server.db.backend == "sqlite" else cid
    found = server.db.query(
        f"SELECT count(*) FROM llm_connection_usage WHERE connection_id = '{key}'"
    )
    return int(found[0][0])


def test_calls_today_and_the_last_latency(api: httpx.Client, server: Server) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        used = api.post("/api/connections", json=connection_body(fake, "used")).json()["id"]
        tested = api.post("/api/connections", json=connection_body(fake, "tested")).json()["id"]
        idle = api.post("/api/connections", json=connection_body(fake, "idle")).json()["id"]
        for _ in range(3):
            call(api, "used")
        wait_until(lambda: usage_rows(server, used) == 3, timeout=30)
        test = api.post(f"/api/connections/{tested}/test").json()
        assert test["success"], test
    # One call made yesterday: it is the last call no more, and not counted today.
    key = uuid.UUID(used).hex if server.db.backend == "sqlite" else used
    yesterday = (
        "datetime(created_at, '-1 day')"
        if server.db.backend == "sqlite"
        else "created_at - interval '1 day'"
    )
    server.db.execute(
        f"UPDATE llm_connection_usage SET created_at = {yesterday} WHERE id ="
        f" (SELECT min(id) FROM llm_connection_usage WHERE connection_id = '{key}')"
    )
    newest = server.db.query(
        "SELECT latency_ms FROM llm_connection_usage"
        f" WHERE connection_id = '{key}' ORDER BY created_at DESC LIMIT 1"
    )[0][0]

    found = activity(api, used, tested, idle, str(uuid.uuid4()))

    assert set(found) == {used, tested}  # never used nor tested, or unknown: absent
    assert found[used]["requests_today"] == 2
    assert found[used]["last_latency_ms"] == newest
    assert found[tested] == {
        "connection_id": tested,
        "last_latency_ms": test["latency_ms"],
        "requests_today": 0,
    }
    assert activity(api) == {}


def test_ids_are_checked(api: httpx.Client) -> None:
    too_many = [str(uuid.uuid4()) for _ in range(201)]
    refused = api.get("/api/connections/activity", params={"id": too_many})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "id"
    assert api.get("/api/connections/activity", params={"id": too_many[:200]}).json() == {
        "items": []
    }
    malformed = api.get("/api/connections/activity", params={"id": "nope"})
    assert malformed.status_code == 422
    assert malformed.json()["error"]["field"] == "id.0"  # the first id, as for any list


def test_a_member_sees_only_what_it_may(team: Team) -> None:
    with team.as_(team.alice) as alice, team.as_(team.carol) as carol:
        mine = alice.post("/api/connections", json=connection_body(team.upstream, "alice-act"))
        theirs = carol.post("/api/connections", json=connection_body(team.upstream, "carol-act"))
        assert mine.status_code == theirs.status_code == 201
        a, c = mine.json()["id"], theirs.json()["id"]
        for client, name in ((alice, "alice-act"), (carol, "carol-act")):
            wait_until(lambda client=client: client.get("/v1/models").status_code == 200)
            call(client, name)
        wait_until(lambda: usage_rows(team.server, a) == usage_rows(team.server, c) == 1, 30)
        assert set(activity(alice, a, c)) == {a}
        assert set(activity(carol, a, c)) == {c}
    with team.as_(team.admin) as admin:
        assert set(activity(admin, a, c)) == {a, c}


def test_usage_reports_have_totals_per_source(api: httpx.Client, server: Server) -> None:
    with FakeOpenAI(api_key=KEY) as fake:
        cid = api.post(
            "/api/connections", json=connection_body(fake, "src", use_in_mcp=True)
        ).json()["id"]
        call(api, "src")
        for _ in range(2):
            answer = api.post(
                "/v1/chat/completions",
                json={**CHAT, "model": "src"},
                headers={"X-UMP-Source": "mcp"},
            )
            assert answer.status_code == 200, answer.text
        wait_until(lambda: usage_rows(server, cid) == 3, timeout=30)
    for path in ("/api/usage", f"/api/connections/{cid}/usage"):
        sources = api.get(path, params={"window": "1h"}).json()["sources"]
        assert [(s["source"], s["requests"], s["successes"]) for s in sources] == [
            ("mcp", 2, 2),
            ("api", 1, 1),
        ]
