"""Access control against a live server: tokens, open mode, roles and teams, sharing, sources,
per-token limits, brute force, trusted proxies and binding off loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import ump_llm_connections
from tests.conftest import Database, Server, cli_env, free_port, make_database, start_server
from tests.test_cli import run as cli
from tests.test_webhooks import Receiver
from tests.upstreams.openai import FakeOpenAI

KEY = "sk-access-upstream-key-0123456789"


@dataclass
class Team:
    """A server with tokens: an admin, two members of team A, one of team B."""

    server: Server
    admin: str
    alice: str  # team a
    bob: str  # team a
    carol: str  # team b
    upstream: FakeOpenAI

    def as_(self, token: str) -> httpx.Client:
        return self.server.client(headers={"Authorization": f"Bearer {token}"})


def create_token(server: Server, *args: str) -> str:
    return cli_token(server.db, server.data_dir, *args)


def cli_token(db: Database, data_dir: Path, *args: str) -> str:
    done = cli("tokens", "create", *args, "--database-url", db.url, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def wait_until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def connection_body(upstream: FakeOpenAI, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "connection_type": "openai",
        "base_url": upstream.url + "/v1",
        "model_name": "fake-model",
        "api_key": KEY,
        "max_retries": 0,
        **extra,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def team(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Team]:
    folder = tmp_path_factory.mktemp(f"access-{request.param}")
    for db in make_database(str(request.param), folder):
        server = start_server(
            db, folder / "data", UMP_GATEWAY_REFRESH_S="0.05", UMP_HEALTH_MONITOR="false"
        )
        try:
            admin = create_token(server, "--name", "root", "--role", "admin")
            with server.client(headers={"Authorization": f"Bearer {admin}"}) as client:
                wait_until(lambda: client.get("/api/tokens").status_code == 200)

                def member(name: str, team: str) -> str:
                    made = client.post(
                        "/api/tokens", json={"name": name, "role": "member", "team": team}
                    )
                    assert made.status_code == 201, made.text
                    token: str = made.json()["token"]
                    return token

                alice, bob, carol = member("alice", "a"), member("bob", "a"), member("carol", "b")
            with FakeOpenAI(api_key=KEY) as upstream:
                yield Team(server, admin, alice, bob, carol, upstream)
        finally:
            server.stop()


def test_a_token_is_printed_alone_on_stdout_and_listed_only_by_its_key_id(team: Team) -> None:
    token = create_token(team.server, "--name", "ci job", "--role", "member", "--team", "a")
    assert token.startswith("ump_") and len(token) == 60 and "\n" not in token
    listed = cli(
        "tokens",
        "list",
        "--json",
        "--database-url",
        team.server.db.url,
        data_dir=team.server.data_dir,
    )
    assert listed.returncode == 0
    assert token not in listed.stdout and token[4:16] in listed.stdout
    stored = team.server.db.query("SELECT token_hash FROM llm_api_tokens")
    assert all(token[16:] not in str(row) for row in stored)
    audited = team.server.db.query(
        "SELECT token_name, target_name FROM llm_audit_log WHERE action = 'token.create'"
    )
    assert ("cli", "ci job") in audited


def test_no_token_or_a_bad_one_is_401_in_each_api_shape(team: Team) -> None:
    with team.server.client() as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        refused = anonymous.get("/api/connections")
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "unauthorized"
        assert refused.json()["error"]["field"] == "Authorization"
        assert refused.headers["www-authenticate"].startswith("Bearer")
    sdk = openai.OpenAI(base_url=team.server.url + "/v1", api_key="ump_" + "0" * 56, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()


def test_revoked_and_expired_tokens_stop_working(team: Team) -> None:
    with team.as_(team.admin) as admin:
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        made = admin.post(
            "/api/tokens", json={"name": "brief", "role": "member", "expires_at": soon}
        ).json()
        kept = admin.post("/api/tokens", json={"name": "kept", "role": "member"}).json()
    with team.as_(kept["token"]) as client:
        assert client.get("/api/connections").status_code == 200
        revoked = cli(
            "tokens",
            "revoke",
            kept["key_id"],
            "--database-url",
            team.server.db.url,
            data_dir=team.server.data_dir,
        )
        assert revoked.returncode == 0, revoked.stderr
        wait_until(lambda: client.get("/api/connections").status_code == 401)
        assert "revoked" in client.get("/api/connections").json()["error"]["message"]
    with team.as_(made["token"]) as client:
        wait_until(lambda: client.get("/api/connections").status_code == 401, timeout=3)
        assert "expired" in client.get("/api/connections").json()["error"]["message"]


def test_members_see_their_own_and_their_teams_connections_only(team: Team) -> None:
    with team.as_(team.alice) as alice, team.as_(team.bob) as bob, team.as_(team.carol) as carol:
        made = alice.post("/api/connections", json=connection_body(team.upstream, "alice-private"))
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        assert made.json()["owner"] is not None and made.json()["team"] is None
        for other in (bob, carol):
            assert other.get(f"/api/connections/{cid}").status_code == 404
            assert other.get("/api/connections/alice-private").status_code == 404
            names = [c["name"] for c in other.get("/api/connections").json()["items"]]
            assert "alice-private" not in names
        refused = alice.post(f"/api/connections/{cid}/share", json={"team": "b"})
        assert refused.status_code == 403 and refused.json()["error"]["field"] == "team"
        assert alice.post(f"/api/connections/{cid}/share", json={"team": "a"}).status_code == 200
        assert bob.get(f"/api/connections/{cid}").status_code == 200
        assert carol.get(f"/api/connections/{cid}").status_code == 404
        changed = bob.patch(f"/api/connections/{cid}", json={"description": "mine now"})
        assert changed.status_code == 403
        edit = {"changes": {"base_url": "http://127.0.0.1:9/v1", "api_key": None}}
        assert bob.post(f"/api/connections/{cid}/test", json=edit).status_code == 403
        assert bob.post(f"/api/connections/{cid}/models", json=edit).status_code == 403
        assert bob.delete(f"/api/connections/{cid}").status_code == 403
        assert carol.delete(f"/api/connections/{cid}").status_code == 404
        summary = carol.get("/api/connections/summary").json()
        assert summary["total"] == len(carol.get("/api/connections").json()["items"])
        given = alice.patch(f"/api/connections/{cid}", json={"owner": "someone-else"})
        assert given.status_code == 403 and given.json()["error"]["field"] == "owner"
        assert alice.post(f"/api/connections/{cid}/unshare").status_code == 200
        assert bob.get(f"/api/connections/{cid}").status_code == 404
        assert alice.delete(f"/api/connections/{cid}").status_code == 204


def test_admin_only_endpoints_refuse_members_with_403(team: Team) -> None:
    with team.as_(team.alice) as alice, team.as_(team.admin) as admin:
        for path in ("/api/tokens", "/metrics", "/api/audit"):
            refused = alice.get(path)
            assert refused.status_code == 403, path
            assert refused.json()["error"]["type"] == "forbidden"
            assert admin.get(path).status_code == 200
        made = alice.post("/api/tokens", json={"name": "escalate", "role": "admin"})
        assert made.status_code == 403
        mine = alice.post("/api/connections", json=connection_body(team.upstream, "not-for-b"))
        cid = mine.json()["id"]
        shared = alice.post(f"/api/connections/{cid}/share", json={"team": "b"})
        assert shared.status_code == 403 and shared.json()["error"]["field"] == "team"
        assert alice.delete(f"/api/connections/{cid}").status_code == 204
        # Each refusal is in the audit log: who, from where, the route (not the raw path).
        page = admin.get("/api/audit", params={"action": "access.denied", "limit": 10}).json()
        rows = [r for r in reversed(page["items"]) if r["token_name"] == "alice"][-5:]
        assert [r["target_name"] for r in rows] == [
            "GET /api/tokens",
            "GET /metrics",
            "GET /api/audit",
            "POST /api/tokens",
            "POST /api/connections/{connection_id}/share",
        ], rows
        assert {(r["outcome"], r["target_type"], r["client"]) for r in rows} == {
            ("denied", "route", "127.0.0.1")
        }
        assert rows[-1]["fields"] == ["team"]


def test_the_gateway_serves_a_member_only_what_it_may_see(team: Team) -> None:
    with team.as_(team.alice) as alice:
        made = alice.post("/api/connections", json=connection_body(team.upstream, "gw-a"))
        assert made.status_code == 201
        cid = made.json()["id"]
    try:
        for token, allowed in ((team.alice, True), (team.bob, False), (team.carol, False)):
            sdk = openai.OpenAI(base_url=team.server.url + "/v1", api_key=token, max_retries=0)
            models = [m.id for m in sdk.models.list()]
            assert ("gw-a" in models) is allowed
            if allowed:
                wait_until(lambda sdk=sdk: _chat(sdk, "gw-a") is not None)
            else:
                with pytest.raises(openai.NotFoundError):
                    sdk.chat.completions.create(
                        model="gw-a", messages=[{"role": "user", "content": "hi"}]
                    )
        admin = openai.OpenAI(base_url=team.server.url + "/v1", api_key=team.admin, max_retries=0)
        assert _chat(admin, "gw-a") is not None
    finally:
        with team.as_(team.admin) as admin_client:
            admin_client.delete(f"/api/connections/{cid}")


def _chat(sdk: openai.OpenAI, model: str, **headers: str) -> str | None:
    try:
        answer = sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=headers or None,
        )
    except openai.NotFoundError:
        return None
    return answer.choices[0].message.content


def test_a_source_bound_token_calls_only_as_its_sources(team: Team) -> None:
    with team.as_(team.admin) as admin:
        agent = admin.post(
            "/api/tokens",
            json={"name": "agent", "role": "admin", "sources": ["livekit"]},
        ).json()["token"]
        voice = admin.post(
            "/api/connections",
            json=connection_body(team.upstream, "voice", use_in_livekit=True),
        ).json()
        text = admin.post("/api/connections", json=connection_body(team.upstream, "text")).json()
    try:
        sdk = openai.OpenAI(base_url=team.server.url + "/v1", api_key=agent, max_retries=0)
        wait_until(lambda: _chat(sdk, "voice") is not None)
        with pytest.raises(openai.PermissionDeniedError) as disabled:
            _chat(sdk, "text")  # the header is absent: the token says livekit
        assert "use_in_livekit" in str(disabled.value)
        with pytest.raises(openai.PermissionDeniedError) as spoofed:
            _chat(sdk, "text", **{"X-UMP-Source": "api"})
        assert spoofed.value.code == "source_not_allowed"
        assert [m.id for m in sdk.models.list()] == ["voice"]
        query = "SELECT token_id FROM llm_connection_usage WHERE source = 'livekit'"
        wait_until(lambda: bool(team.server.db.query(query)))
        assert all(token_id is not None for (token_id,) in team.server.db.query(query))
    finally:
        with team.as_(team.admin) as admin:
            for made in (voice, text):
                admin.delete(f"/api/connections/{made['id']}")


def test_a_token_over_its_rpm_gets_429_with_retry_after(team: Team) -> None:
    with team.as_(team.admin) as admin:
        limited = admin.post(
            "/api/tokens", json={"name": "slow", "role": "admin", "rpm_limit": 2}
        ).json()["token"]
        made = admin.post("/api/connections", json=connection_body(team.upstream, "rpm")).json()
    try:
        body = {"model": "rpm", "messages": [{"role": "user", "content": "hi"}]}
        with team.as_(limited) as client:
            wait_until(lambda: client.get("/v1/models").json()["data"] != [])
            # Five calls: even if a minute starts among them, one of them is over the limit.
            answers = [client.post("/v1/chat/completions", json=body) for _ in range(5)]
        assert answers[0].status_code == 200, answers[0].text
        refused = next(r for r in answers if r.status_code != 200)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert "slow" in refused.json()["error"]["message"]
    finally:
        with team.as_(team.admin) as admin:
            admin.delete(f"/api/connections/{made['id']}")


def test_moving_a_connection_to_another_host_needs_its_key_again(team: Team) -> None:
    with team.as_(team.admin) as admin:
        made = admin.post("/api/connections", json=connection_body(team.upstream, "moving")).json()
        try:
            path = f"/api/connections/{made['id']}"
            same_host = admin.patch(path, json={"base_url": team.upstream.url + "/v2"})
            assert same_host.status_code == 200
            moved = admin.patch(path, json={"base_url": "http://127.0.0.1:9/v1"})
            assert moved.status_code == 422
            assert moved.json()["error"]["field"] == "api_key"
            with_key = admin.patch(
                path, json={"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-new-key-000000"}
            )
            assert with_key.status_code == 200
        finally:
            admin.delete(f"/api/connections/{made['id']}")


def test_repeated_failures_from_one_address_are_throttled_then_audited(
    tmp_path: Path, fresh_database: Database
) -> None:
    server = start_server(
        fresh_database,
        tmp_path / "data",
        UMP_GATEWAY_REFRESH_S="0.05",
        UMP_HEALTH_MONITOR="false",
        UMP_TRUSTED_PROXIES="127.0.0.1/32",
    )
    try:
        good = create_token(server, "--name", "root", "--role", "admin")
        with server.client() as client:
            wait_until(lambda: client.get("/api/tokens").status_code == 401)

            def attempt(token: str, address: str) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": address}
                return client.get("/api/connections", headers=headers)

            bad = "ump_" + "1" * 56
            statuses = [attempt(bad, "203.0.113.7").status_code for _ in range(10)]
            assert statuses == [401] * 10
            throttled = attempt(good, "203.0.113.7")
            assert throttled.status_code == 429
            assert int(throttled.headers["retry-after"]) >= 1
            assert attempt(good, "203.0.113.8").status_code == 200  # another client
            # The peer is trusted, so a forged hop to its left does not hide the client.
            assert attempt(good, "198.51.100.1, 203.0.113.7").status_code == 429
            audit = client.get("/api/audit", headers={"Authorization": f"Bearer {good}"})
            rows = audit.json()["items"]
            assert [r["action"] for r in rows].count("auth.failure") == 10
            flagged = [r["client"] for r in rows if r["action"] == "auth.throttled"]
            assert flagged == ["203.0.113.7"]
        assert good not in server.log() and bad not in server.log()
    finally:
        server.stop()


def test_serve_off_loopback_needs_a_token_first(tmp_path: Path, fresh_database: Database) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "ump_llm_connections",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--database-url",
        fresh_database.url,
    ]
    refused = subprocess.run(
        command, env=cli_env(tmp_path), capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 2
    assert "ump-llm tokens create --name admin --role admin" in refused.stderr
    token = cli_token(fresh_database, tmp_path, "--name", "root", "--role", "admin")
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(command, env=cli_env(tmp_path), stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), timeout=60)
        assert httpx.get(f"{url}/api/connections").status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/api/connections", headers=headers).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


# Every operation, with the ids of team A's resources in its path and a body that would be
# accepted if the caller could see them. A route missing here fails the walk: new routes must
# say how they keep other teams out.
PATH_IDS = {
    "connection_id": "connection",
    "pool_id": "pool",
    "webhook_id": "webhook",
    "token_id": "token",
    "name": "preset",
    "spot_id": "spot",
}
BODIES: dict[tuple[str, str], Any] = {
    ("patch", "/api/connections/{connection_id}"): {"description": "taken over"},
    ("post", "/api/connections/{connection_id}/share"): {"team": "b"},
    ("post", "/api/connections/{connection_id}/test"): {"prompt": "hi", "max_tokens": 5},
    ("patch", "/api/pools/{pool_id}"): {"description": "taken over"},
    ("post", "/api/tokens"): {"name": "escalate", "role": "admin"},
    ("post", "/api/presets/{name}/apply"): {"prefix": "walk-", "api_keys": {}},
}


@dataclass
class Owned:
    connection: str
    pool: str
    webhook: str
    token: str
    names: tuple[str, ...]

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.connection, self.pool, self.webhook, *self.names)


def test_another_team_gets_nothing_from_any_route(team: Team) -> None:
    with team.as_(team.alice) as alice, team.as_(team.admin) as admin:
        body = connection_body(team.upstream, "walk-secret-conn")
        connection = alice.post("/api/connections", json=body).json()
        assert alice.post(f"/api/connections/{connection['id']}/share", json={"team": "a"})
        pool = alice.post(
            "/api/pools",
            json={"name": "walk-secret-pool", "members": [{"connection_id": connection["id"]}]},
        ).json()
        webhook = alice.post(
            "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]}
        ).json()
        alice_token = next(
            t["id"] for t in admin.get("/api/tokens").json()["items"] if t["name"] == "alice"
        )
        spec = admin.get("/openapi.json").json()
    owned = Owned(
        connection["id"],
        pool["id"],
        webhook["id"],
        alice_token,
        ("walk-secret-conn", "walk-secret-pool"),
    )
    values = {
        "connection": owned.connection,
        "pool": owned.pool,
        "webhook": owned.webhook,
        "token": owned.token,
        "preset": "local-first",
        "spot": str(uuid.uuid4()),  # no spot instance here (no AWS): every spot route refuses
    }
    try:
        with team.as_(team.carol) as carol:
            for path, operations in spec["paths"].items():
                for method in operations:
                    url = path
                    for param, kind in PATH_IDS.items():
                        url = url.replace("{" + param + "}", values[kind])
                    assert "{" not in url, f"no id for {path}: add it to PATH_IDS"
                    payload = BODIES.get((method, path))
                    if method in ("post", "patch", "put") and payload is None:
                        payload = _probe_body(path, owned)
                    if path == STREAM:  # never ends: its first frame only (its scoping:
                        _check_stream_hidden(carol, owned)  # tests/test_events_stream.py)
                        continue
                    answer = carol.request(method.upper(), url, json=payload)
                    _check_hidden(method, path, answer, owned)
                    if method == "post" and answer.status_code == 201:
                        _undo(carol, path, answer.json())
            refused = carol.post(
                "/v1/chat/completions",
                json={"model": "walk-secret-pool", "messages": [{"role": "user", "content": "x"}]},
            )
            assert refused.status_code == 404
    finally:
        with team.as_(team.admin) as admin:
            admin.delete(f"/api/pools/{owned.pool}")
            admin.delete(f"/api/webhooks/{owned.webhook}")
            admin.delete(f"/api/connections/{owned.connection}")


STREAM = "/api/events"


def _check_stream_hidden(client: httpx.Client, owned: Owned) -> None:
    with client.stream("GET", STREAM) as answer:
        assert answer.status_code == 200
        first = next(answer.iter_text())
    assert first.startswith("event: ready")
    for secret in owned.secrets:
        assert secret not in first


def _probe_body(path: str, owned: Owned) -> Any:
    """What a member of another team would send to reach team A's things through a create."""
    if path == "/api/connections":
        return connection_body_to(owned)
    if path == "/api/connections/test":
        return {"connection": connection_body_to(owned)}
    if path == "/api/connections/{connection_id}/models":  # an edit's models (GET: the saved)
        return {"changes": {"model_name": "m"}}
    if path == "/api/pools":
        return {"name": "walk-carol-pool", "members": [{"connection_id": owned.connection}]}
    if path == "/api/webhooks":
        return {"url": "http://127.0.0.1:9/carol", "events": ["*"]}
    if path == "/v1/chat/completions":
        return {"model": "walk-secret-conn", "messages": [{"role": "user", "content": "x"}]}
    return {}


def connection_body_to(owned: Owned) -> dict[str, Any]:
    return {
        "name": "walk-carol-conn",
        "connection_type": "local",
        "base_url": "http://127.0.0.1:9",
        "model_name": "m",
    }


def _check_hidden(method: str, path: str, answer: httpx.Response, owned: Owned) -> None:
    """Nothing of team A's in the answer, but what the request itself said (a refusal may
    repeat the id or name it was asked for)."""
    where = f"{method.upper()} {path} -> {answer.status_code}: {answer.text[:300]}"
    assert answer.status_code < 500, where
    asked = str(answer.request.url) + answer.request.content.decode()
    for secret in owned.secrets:
        if answer.status_code >= 400 and secret in asked:
            continue
        assert secret not in answer.text, where
    if any("{" + p + "}" in path for p in ("connection_id", "pool_id", "webhook_id")):
        assert answer.status_code in (403, 404), where
    if path.startswith("/api/tokens") or path == "/metrics" or path.startswith("/api/audit"):
        assert answer.status_code == 403, where


def _undo(client: httpx.Client, path: str, made: dict[str, Any]) -> None:
    if path == "/api/presets/{name}/apply":
        client.delete(f"/api/pools/{made['pool']['id']}")
        for connection in made["connections"]:
            client.delete(f"/api/connections/{connection['id']}")
    elif "id" in made and path in ("/api/connections", "/api/pools", "/api/webhooks"):
        client.delete(f"{path}/{made['id']}")


def test_a_members_webhook_hears_only_of_connections_its_owner_may_see(team: Team) -> None:
    with (
        Receiver() as receiver,
        team.as_(team.alice) as alice,
        team.as_(team.carol) as carol,
        team.as_(team.admin) as admin,
    ):
        hooks = [
            client.post(
                "/api/webhooks",
                json={"url": f"{receiver.url}/{who}", "events": ["connection.created"]},
            ).json()
            for who, client in (("alice", alice), ("admin", admin))
        ]
        made = [
            client.post("/api/connections", json=connection_body(team.upstream, name)).json()
            for name, client in (("hook-carol", carol), ("hook-alice", alice))
        ]
        try:
            wait_until(lambda: len(receiver.at("/admin")) == 2 and receiver.at("/alice"))
            time.sleep(0.3)  # a delivery that should not happen would have come by now
            heard = [hit.body["data"]["name"] for hit in receiver.at("/alice")]
            assert heard == ["hook-alice"]
            assert [h["id"] for h in carol.get("/api/webhooks").json()["items"]] == []
            assert carol.get(f"/api/webhooks/{hooks[0]['id']}").status_code == 404
        finally:
            for hook in hooks:
                admin.delete(f"/api/webhooks/{hook['id']}")
            for connection in made:
                admin.delete(f"/api/connections/{connection['id']}")


def test_no_token_is_stored_logged_or_answered_in_plain_text(team: Team) -> None:
    """Every token this module made, searched in the database file or tables, the server's log
    and the answers that list tokens (a fragment is enough to fail)."""
    tokens = [team.admin, team.alice, team.bob, team.carol]
    with team.as_(team.admin) as admin:
        listed = admin.get("/api/tokens").text + admin.get("/api/audit").text
    server = team.server
    stored = " ".join(
        str(row)
        for table in ("llm_api_tokens", "llm_audit_log", "llm_connection_usage")
        for row in server.db.query(f"SELECT * FROM {table}")
    )
    if server.db.backend == "sqlite":
        stored += Path(server.db.dsn).read_bytes().decode("latin-1")
    for token in tokens:
        secret = token[16:]  # after ump_<key id>_
        for start in range(0, len(secret) - 8, 8):
            fragment = secret[start : start + 8]
            for where, text in (("db", stored), ("log", server.log()), ("api", listed)):
                assert fragment not in text, f"a piece of a token is in the {where}"


def test_changes_and_refused_sign_ins_are_in_the_audit_log(team: Team) -> None:
    new_key = "sk-audit-rotated-key-0123456789"
    with team.as_(team.alice) as alice, team.as_(team.admin) as admin:
        made = alice.post("/api/connections", json=connection_body(team.upstream, "audited"))
        cid = made.json()["id"]
        alice.patch(f"/api/connections/{cid}", json={"api_key": new_key, "timeout": 30})
        alice.post(f"/api/connections/{cid}/share", json={"team": "a"})
        alice.post(f"/api/connections/{cid}/deactivate")
        alice.delete(f"/api/connections/{cid}")
        with team.server.client(headers={"Authorization": "Bearer ump_nope"}) as stranger:
            assert stranger.get("/api/connections").status_code == 401
        page = admin.get("/api/audit", params={"target_id": cid, "limit": 50}).json()
        actions = [row["action"] for row in reversed(page["items"])]
        assert actions == [
            "connection.create",
            "connection.update",
            "connection.key_change",
            "connection.share",
            "connection.deactivate",
            "connection.delete",
        ]
        assert {row["token_name"] for row in page["items"]} == {"alice"}
        assert all(row["client"] == "127.0.0.1" for row in page["items"])
        update = next(row for row in page["items"] if row["action"] == "connection.update")
        assert update["fields"] == ["api_key", "timeout"]
        refused = admin.get("/api/audit", params={"action": "auth.failure"}).json()["items"]
        assert refused and refused[0]["outcome"] == "denied" and refused[0]["token_id"] is None
        everything = admin.get("/api/audit", params={"limit": 500}).text
    for secret in (KEY, new_key, "ump_nope"):
        assert secret[:12] not in everything


def test_the_upstream_allowlist_binds_members_not_admins(
    tmp_path: Path, fresh_database: Database
) -> None:
    server = start_server(
        fresh_database,
        tmp_path / "data",
        UMP_GATEWAY_REFRESH_S="0.05",
        UMP_HEALTH_MONITOR="false",
        UMP_UPSTREAM_ALLOWLIST="127.0.0.1,*.internal.example",
    )
    try:
        admin_token = create_token(server, "--name", "root", "--role", "admin")
        member_token = create_token(server, "--name", "m", "--role", "member", "--team", "t")
        local = {"connection_type": "local", "model_name": "m", "base_url": "http://localhost:9"}
        with (
            server.client(headers={"Authorization": f"Bearer {member_token}"}) as member,
            server.client(headers={"Authorization": f"Bearer {admin_token}"}) as admin,
        ):
            wait_until(lambda: member.get("/api/connections").status_code == 200)
            refused = member.post("/api/connections", json={**local, "name": "off-list"})
            assert refused.status_code == 422 and refused.json()["error"]["field"] == "base_url"
            listed = {**local, "name": "on-list", "base_url": "http://127.0.0.1:9"}
            made = member.post("/api/connections", json=listed)
            assert made.status_code == 201, made.text
            moved = member.patch(
                f"/api/connections/{made.json()['id']}", json={"base_url": "http://localhost:9"}
            )
            assert moved.status_code == 422 and moved.json()["error"]["field"] == "base_url"
            unsaved = {**local, "name": "unsaved"}
            tested = member.post("/api/connections/test", json={"connection": unsaved})
            assert tested.json()["error"]["field"] == "connection.base_url"
            listed_models = member.post("/api/connections/models", json={"connection": unsaved})
            assert listed_models.json()["error"]["field"] == "connection.base_url"
            hook = member.post(
                "/api/webhooks", json={"url": "http://localhost:9/h", "events": ["*"]}
            )
            assert hook.status_code == 422 and hook.json()["error"]["field"] == "url"
            assert (
                admin.post("/api/connections", json={**local, "name": "admin"}).status_code == 201
            )
    finally:
        server.stop()


def test_a_token_over_its_monthly_budget_is_refused(team: Team) -> None:
    with team.as_(team.admin) as admin:
        thrifty = admin.post(
            "/api/tokens", json={"name": "thrifty", "role": "admin", "monthly_budget": 0.0001}
        ).json()["token"]
        priced = connection_body(
            team.upstream, "priced", input_cost_per_million=1000.0, output_cost_per_million=1000.0
        )
        made = admin.post("/api/connections", json=priced).json()
    try:
        body = {"model": "priced", "messages": [{"role": "user", "content": "hi"}]}
        with team.as_(thrifty) as client:
            wait_until(lambda: client.get("/v1/models").json()["data"] != [])
            first = client.post("/v1/chat/completions", json=body)
            assert first.status_code == 200, first.text  # it crosses the budget
            refused = client.post("/v1/chat/completions", json=body)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "budget_exceeded"
        assert "thrifty" in refused.json()["error"]["message"]
        with team.as_(team.admin) as admin:  # the connection itself is not over any budget
            assert admin.post("/v1/chat/completions", json=body).status_code == 200
    finally:
        with team.as_(team.admin) as admin:
            admin.delete(f"/api/connections/{made['id']}")


def test_the_sdk_uses_its_token_and_sees_what_the_token_may(team: Team) -> None:
    api_url = team.server.url + "/api"
    with team.as_(team.alice) as alice, team.as_(team.admin) as admin:
        mine = alice.post("/api/connections", json=connection_body(team.upstream, "sdk-alice"))
        theirs = admin.post(
            "/api/connections",
            json=connection_body(team.upstream, "sdk-voice", use_in_livekit=True, team="b"),
        )
        assert mine.status_code == theirs.status_code == 201, (mine.text, theirs.text)
        agent = admin.post(
            "/api/tokens", json={"name": "sdk-agent", "role": "admin", "sources": ["livekit"]}
        ).json()["token"]

    async def scenario() -> None:
        with pytest.raises(ump_llm_connections.Unauthorized, match="UMP_API_TOKEN"):
            await ump_llm_connections.ConnectionManager(api_url, token="").get_connections()
        bad = ump_llm_connections.ConnectionManager(api_url, token=f"{team.alice}x")
        with pytest.raises(ump_llm_connections.Unauthorized) as refused:
            await bad.get_connections()
        assert team.alice[8:] not in refused.value.message

        as_alice = ump_llm_connections.ConnectionManager(api_url, token=team.alice)
        assert [c.name for c in await as_alice.get_connections()] == ["sdk-alice"]
        with pytest.raises(ump_llm_connections.ConnectionNotFound, match="may not see"):
            await as_alice.get_connection("sdk-voice")
        connection = await as_alice.get_connection("sdk-alice")
        assert (await connection.generate(prompt="hi")).text == team.upstream.reply.text

        as_agent = ump_llm_connections.ConnectionManager(api_url, token=agent)
        voice = await as_agent.get_connection("sdk-voice")  # fetched for no integration:
        assert (await voice.generate(prompt="hi")).text  # the token's source decides
        mcp = await as_agent.get_connection("sdk-alice", use_in_mcp=False)
        mcp.source = "mcp"
        with pytest.raises(ump_llm_connections.Forbidden) as spoofed:
            await mcp.generate(prompt="hi")
        assert spoofed.value.code == "source_not_allowed"

    try:
        asyncio.run(scenario())
        query = (
            "SELECT u.source FROM llm_connection_usage u JOIN llm_connections c "
            "ON c.id = u.connection_id WHERE c.name = 'sdk-voice'"
        )
        wait_until(lambda: bool(team.server.db.query(query)))
        assert {source for (source,) in team.server.db.query(query)} == {"livekit"}
    finally:
        with team.as_(team.admin) as admin:
            for made in (mine, theirs):
                admin.delete(f"/api/connections/{made.json()['id']}")
