"""Pools, failover, the circuit breaker, limits and budgets, through the gateway over HTTP."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import Database, Server, start_server
from tests.test_webhooks import SECRET, Receiver, verify, wait_for, webhook
from tests.upstreams.base import Behaviour
from tests.upstreams.openai import FakeOpenAI

HELLO = {"messages": [{"role": "user", "content": "Hello, how are you?"}]}


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI]]:
    with (
        FakeOpenAI(api_key=None) as a,
        FakeOpenAI(api_key=None) as b,
        FakeOpenAI(api_key=None) as c,
    ):
        yield a, b, c


def connection(api: httpx.Client, name: str, fake: FakeOpenAI, **fields: Any) -> str:
    body = {
        "name": name,
        "connection_type": "remote",
        "base_url": f"{fake.url}/v1",
        "model_name": "fake-model",
        "max_retries": 0,
        "timeout": 2,
        **fields,
    }
    response = api.post("/api/connections", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def pool(
    api: httpx.Client, name: str, strategy: str, members: list[dict[str, Any]]
) -> dict[str, Any]:
    response = api.post("/api/pools", json={"name": name, "strategy": strategy, "members": members})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def ask(api: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    return api.post(
        "/v1/chat/completions",
        json={"model": model, **HELLO, **extra},
        headers=extra.pop("headers", None) or {},
    )


def served_by(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["x-ump-connection"]


def test_pool_crud_and_validation(api: httpx.Client, fakes: tuple[FakeOpenAI, ...]) -> None:
    a = connection(api, "A", fakes[0])
    b = connection(api, "B", fakes[1])
    created = pool(
        api,
        "Prod",
        "priority",
        [{"connection_id": a, "priority": 1}, {"connection_id": b, "priority": 2}],
    )
    assert [m["connection_name"] for m in created["members"]] == ["A", "B"]
    assert api.get("/api/pools/prod").json()["id"] == created["id"]
    assert api.get("/api/pools").json()["total"] == 1
    patched = api.patch(
        f"/api/pools/{created['id']}",
        json={"strategy": "weighted", "members": [{"connection_id": b}]},
    ).json()
    assert patched["strategy"] == "weighted"
    assert [m["connection_name"] for m in patched["members"]] == ["B"]

    def refused(body: dict[str, Any], status: int, field: str) -> None:
        response = api.post("/api/pools", json=body)
        assert response.status_code == status, response.text
        assert response.json()["error"]["field"] == field

    missing = str(uuid.uuid4())
    refused({"name": "X", "members": [{"connection_id": missing}]}, 422, "members.0.connection_id")
    refused(
        {"name": "X", "members": [{"connection_id": a}, {"connection_id": a}]},
        422,
        "members.1.connection_id",
    )
    refused({"name": "X", "members": []}, 422, "members")
    refused({"name": "X", "strategy": "random", "members": [{"connection_id": a}]}, 422, "strategy")
    refused({"name": "a", "members": [{"connection_id": a}]}, 409, "name")  # a connection's
    refused({"name": "PROD", "members": [{"connection_id": a}]}, 409, "name")
    clash = api.post(
        "/api/connections", json={"name": "prod", "connection_type": "local", "model_name": "m"}
    )
    assert clash.status_code == 409

    api.delete(f"/api/connections/{b}")  # a deleted connection leaves its pools
    assert api.get("/api/pools/prod").json()["members"] == []
    assert api.delete("/api/pools/prod").status_code == 204
    assert api.get("/api/pools/prod").status_code == 404


def test_priority_pool_fails_over_with_no_failed_request(
    api: httpx.Client, server: Server, fakes: tuple[FakeOpenAI, ...]
) -> None:
    a = connection(api, "primary", fakes[0])
    b = connection(api, "fallback", fakes[1])
    pool(
        api,
        "stack",
        "priority",
        [{"connection_id": a, "priority": 1}, {"connection_id": b, "priority": 2}],
    )
    models = {m["id"]: m["owned_by"] for m in api.get("/v1/models").json()["data"]}
    assert models == {"primary": "remote", "fallback": "remote", "stack": "pool"}
    assert {served_by(ask(api, "stack")) for _ in range(5)} == {"primary"}
    fakes[0].stop()  # the primary dies mid-run
    served = [served_by(ask(api, "stack")) for _ in range(30)]
    assert set(served) == {"fallback"}
    # The breaker took the dead one out of rotation: not one attempt per request.
    failures = server.db.query(
        "SELECT count(*) FROM llm_connection_usage WHERE success = false"
        if server.db.backend == "postgresql"
        else "SELECT count(*) FROM llm_connection_usage WHERE success = 0"
    )
    deadline = time.monotonic() + 5
    while not failures[0][0] and time.monotonic() < deadline:
        time.sleep(0.1)
        failures = server.db.query(
            "SELECT count(*) FROM llm_connection_usage WHERE error_kind = 'unreachable'"
        )
    assert 1 <= failures[0][0] <= 3


def test_failover_under_concurrent_load(api: httpx.Client, fakes: tuple[FakeOpenAI, ...]) -> None:
    a = connection(api, "one", fakes[0])
    b = connection(api, "two", fakes[1])
    pool(api, "busy", "weighted", [{"connection_id": a}, {"connection_id": b}])

    def call(index: int) -> int:
        if index == 40:
            fakes[0].behaviour = Behaviour.server_error  # one member starts failing
        return ask(api, "busy").status_code

    with ThreadPoolExecutor(8) as workers:
        statuses = list(workers.map(call, range(120)))
    assert statuses == [200] * 120


def test_stream_fails_over_before_the_first_byte(
    api: httpx.Client, fakes: tuple[FakeOpenAI, ...]
) -> None:
    a = connection(api, "flaky", fakes[0])
    b = connection(api, "steady", fakes[1])
    pool(
        api,
        "s",
        "priority",
        [{"connection_id": a, "priority": 1}, {"connection_id": b, "priority": 2}],
    )
    fakes[0].behaviour = Behaviour.rate_limited
    with api.stream(
        "POST", "/v1/chat/completions", json={"model": "s", "stream": True, **HELLO}
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-ump-connection"] == "steady"
        body = "".join(response.iter_text())
    assert "[DONE]" in body


def test_weights_hold(api: httpx.Client, fakes: tuple[FakeOpenAI, ...]) -> None:
    a = connection(api, "heavy", fakes[0])
    b = connection(api, "light", fakes[1])
    pool(
        api, "w", "weighted", [{"connection_id": a, "weight": 3}, {"connection_id": b, "weight": 1}]
    )
    counts = Counter(served_by(ask(api, "w")) for _ in range(400))
    assert 0.68 <= counts["heavy"] / 400 <= 0.82, counts


def test_ab_is_sticky_and_split_by_weight(api: httpx.Client, fakes: tuple[FakeOpenAI, ...]) -> None:
    a = connection(api, "arm-a", fakes[0])
    b = connection(api, "arm-b", fakes[1])
    created = pool(
        api, "exp", "ab", [{"connection_id": a, "weight": 1}, {"connection_id": b, "weight": 1}]
    )
    for user in ("alice", "bob", "carol"):
        arms = {served_by(ask(api, "exp", headers={"X-UMP-AB-Key": user})) for _ in range(5)}
        assert len(arms) == 1, (user, arms)
        # OpenAI's `user` field works as the key too, and agrees with the header.
        assert served_by(ask(api, "exp", user=user)) == arms.pop()
    split = Counter(served_by(ask(api, "exp", user=f"user-{i}")) for i in range(200))
    assert 0.38 <= split["arm-a"] / 200 <= 0.62, split

    deadline = time.monotonic() + 5
    while True:
        stats = api.get(f"/api/pools/{created['id']}/stats", params={"window": "1h"}).json()
        if stats["totals"]["requests"] >= 218 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert stats["totals"]["requests"] == 218
    by_name = {m["name"]: m for m in stats["members"]}
    assert set(by_name) == {"arm-a", "arm-b"}
    assert by_name["arm-a"]["requests"] + by_name["arm-b"]["requests"] == 218
    assert by_name["arm-a"]["success_rate"] == 1.0
    assert by_name["arm-a"]["latency_p95_ms"] is not None


def test_least_latency_prefers_the_fast_member(
    api: httpx.Client, fakes: tuple[FakeOpenAI, ...]
) -> None:
    a = connection(api, "slow", fakes[0])
    b = connection(api, "fast", fakes[1])
    fakes[0].behaviour = Behaviour.slow_first_token
    fakes[0].delay = 0.15
    pool(api, "quick", "least_latency", [{"connection_id": a}, {"connection_id": b}])
    served = Counter(served_by(ask(api, "quick")) for _ in range(20))
    assert served["fast"] >= 18, served


def test_rate_limit_fails_over_then_429(api: httpx.Client, fakes: tuple[FakeOpenAI, ...]) -> None:
    a = connection(api, "capped", fakes[0], rpm_limit=3)
    b = connection(api, "spare", fakes[1])
    for _ in range(3):
        assert served_by(ask(api, "capped")) == "capped"
    over = ask(api, "capped")
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(over.headers["retry-after"]) <= 60
    pool(
        api,
        "overflow",
        "priority",
        [{"connection_id": a, "priority": 1}, {"connection_id": b, "priority": 2}],
    )
    assert served_by(ask(api, "overflow")) == "spare"


def test_budget_skips_a_connection(
    api: httpx.Client, fakes: tuple[FakeOpenAI, ...], server: Server
) -> None:
    # one call: 12 prompt + 9 completion tokens at 1000/M each = 0.021 > the 0.01 budget
    a = connection(
        api,
        "pricey",
        fakes[0],
        monthly_budget=0.01,
        input_cost_per_million=1000,
        output_cost_per_million=1000,
    )
    b = connection(api, "cheap", fakes[1])
    assert served_by(ask(api, "pricey")) == "pricey"
    over = ask(api, "pricey")
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "budget_exceeded"
    pool(
        api,
        "thrifty",
        "priority",
        [{"connection_id": a, "priority": 1}, {"connection_id": b, "priority": 2}],
    )
    assert served_by(ask(api, "thrifty")) == "cheap"
    assert "over its monthly budget" in server.log()


def test_budget_exceeded_raises_an_event(api: httpx.Client, fakes: tuple[FakeOpenAI, ...]) -> None:
    with Receiver() as receiver:
        webhook(api, f"{receiver.url}/budget", ["connection.budget_exceeded"], secret=SECRET)
        connection(
            api,
            "metered",
            fakes[0],
            monthly_budget=0.03,
            input_cost_per_million=1000,
            output_cost_per_million=1000,
        )
        served_by(ask(api, "metered"))  # 0.021 spent: under
        served_by(ask(api, "metered"))  # 0.042 spent: this call crossed it
        wait_for(lambda: bool(receiver.at("/budget")))
        (hit,) = receiver.at("/budget")
        verify(hit, SECRET)
        data = hit.body["data"]
        assert (data["name"], data["budget"]) == ("metered", 0.03)
        assert data["spent"] == pytest.approx(0.042)


def test_usage_totals_per_pool(api: httpx.Client, fakes: tuple[FakeOpenAI, ...]) -> None:
    a = connection(api, "p1", fakes[0], input_cost_per_million=1, output_cost_per_million=2)
    created = pool(api, "counted", "priority", [{"connection_id": a}])
    for _ in range(3):
        served_by(ask(api, "counted"))
    served_by(ask(api, "p1"))  # directly: not a pool call
    deadline = time.monotonic() + 5
    while True:
        report = api.get("/api/usage", params={"window": "1h", "bucket": "1d"}).json()
        if report["totals"]["requests"] >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    (counted,) = report["pools"]
    assert (counted["pool_id"], counted["name"], counted["requests"]) == (
        created["id"],
        "counted",
        3,
    )
    assert counted["cost"] == pytest.approx(3 * (12 * 1 + 9 * 2) / 1e6)
    assert report["bucket_seconds"] == 86400


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"ump:test:{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis(host="127.0.0.1", port=6379)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_limits_hold_across_two_servers_sharing_redis(
    fresh_database: Database, tmp_path: Path, redis_prefix: str
) -> None:
    env = {"UMP_REDIS_URL": "redis://127.0.0.1:6379/0", "UMP_REDIS_PREFIX": redis_prefix}
    first = start_server(fresh_database, tmp_path / "data", **env)
    second = start_server(fresh_database, tmp_path / "data", **env)
    try:
        with FakeOpenAI(api_key=None) as fake, first.client() as one, second.client() as two:
            connection(one, "shared", fake, rpm_limit=10)
            deadline = time.monotonic() + 10
            while not two.get("/v1/models").json()["data"]:  # the second replica catches up
                assert time.monotonic() < deadline
                time.sleep(0.1)

            def call(index: int) -> int:
                return ask(one if index % 2 else two, "shared").status_code

            with ThreadPoolExecutor(8) as workers:
                statuses = Counter(workers.map(call, range(30)))
        assert statuses == Counter({200: 10, 429: 20})
    finally:
        first.stop()
        second.stop()
