"""Testing connections over the REST API: every wire format, failures, history, models."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Database, Server, free_port, start_server
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import Behaviour, FakeUpstream
from tests.upstreams.google import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI

KEY = "sk-test-endpoint-key-000000000000"


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/connections", json={"name": "Under test", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def openai_connection(fake: FakeUpstream, **fields: Any) -> dict[str, Any]:
    return {
        "connection_type": "openai",
        "base_url": f"{fake.url}/v1",
        "model_name": "fake-model",
        "api_key": KEY,
        "max_retries": 0,
        **fields,
    }


# (connection fields, fake) for each wire format the guide's types use
FORMATS: list[tuple[str, type[FakeUpstream], dict[str, Any]]] = [
    ("openai", FakeOpenAI, {"connection_type": "openai", "path": "/v1"}),
    ("groq", FakeOpenAI, {"connection_type": "groq", "path": "/v1"}),
    (
        "azure",
        FakeOpenAI,
        {
            "connection_type": "azure",
            "path": "",
            "deployment": "fake-model",
            "api_version": "2024-10-21",
        },
    ),
    ("llama.cpp", FakeOpenAI, {"connection_type": "local", "path": "", "api_key": None}),
    ("anthropic", FakeAnthropic, {"connection_type": "anthropic", "path": "/v1"}),
    ("google", FakeGemini, {"connection_type": "google", "path": "/v1beta"}),
    (
        "ollama",
        FakeOllama,
        {"connection_type": "local", "path": "", "api_format": "ollama", "api_key": None},
    ),
]


@pytest.mark.parametrize(
    ("fake_class", "fields"), [f[1:] for f in FORMATS], ids=[f[0] for f in FORMATS]
)
def test_each_format_tests_green(
    api: httpx.Client, fake_class: type[FakeUpstream], fields: dict[str, Any]
) -> None:
    fields = dict(fields)
    key = fields.pop("api_key", KEY)
    with fake_class(api_key=key) as fake:
        connection = create(
            api,
            model_name="fake-model",
            base_url=fake.url + fields.pop("path"),
            **({"api_key": key} if key else {}),
            **fields,
        )
        response = api.post(f"/api/connections/{connection['id']}/test")
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["success"] is True, result
        assert result["status"] == "active"
        assert result["response_preview"] == fake.reply.text
        assert result["tokens"] == {"prompt": 12, "completion": 9}
        assert 0 < result["ttft_ms"] <= result["latency_ms"]
        assert result["error_kind"] is None
        sent = fake.requests[-1]
        assert "Hello, how are you?" in str(sent.body)  # the guide's default prompt
    after = api.get(f"/api/connections/{connection['id']}").json()
    assert after["status"] == "active"
    assert after["last_tested_at"] is not None
    assert after["consecutive_failures"] == 0


def test_prompt_and_max_tokens_reach_the_upstream(
    api: httpx.Client, openai_fake: FakeOpenAI
) -> None:
    connection = create(api, **openai_connection(openai_fake))
    response = api.post(
        f"/api/connections/{connection['id']}/test", json={"prompt": "Say OK", "max_tokens": 7}
    )
    assert response.json()["success"] is True
    body = openai_fake.requests[-1].body
    assert body["messages"][-1] == {"role": "user", "content": "Say OK"}
    assert body["max_tokens"] == 7
    assert body["stream"] is True


def test_failures_count_up_and_success_resets(
    api: httpx.Client, openai_fake: FakeOpenAI, server: Server
) -> None:
    connection = create(api, **openai_connection(openai_fake, api_key="sk-wrong-key-0000000000"))
    url = f"/api/connections/{connection['id']}"
    for failures in (1, 2):
        result = api.post(f"{url}/test").json()
        assert result["success"] is False
        assert result["error_kind"] == "auth"
        assert result["http_status"] == 401
        assert result["error"].startswith("401 from 127.0.0.1")
        assert "check the API key" in result["error"]
        assert result["status"] == "error"
        state = api.get(url).json()
        assert state["consecutive_failures"] == failures
        assert state["last_error"] == result["error"]
    assert "sk-wrong-key-0000000000" not in server.log()
    api.patch(url, json={"api_key": KEY})
    assert api.post(f"{url}/test").json()["success"] is True
    state = api.get(url).json()
    assert (state["status"], state["consecutive_failures"], state["last_error"]) == (
        "active",
        0,
        None,
    )


@pytest.mark.parametrize(
    ("behaviour", "kind", "timeout"),
    [
        (Behaviour.hang, "timeout", 0.5),
        (Behaviour.rate_limited, "rate_limited", 5),
        (Behaviour.model_not_found, "not_found", 5),
        (Behaviour.server_error, "server_error", 5),
        (Behaviour.malformed, "bad_response", 5),
        (Behaviour.cut_stream, "bad_response", 5),
    ],
)
def test_failure_kinds(
    api: httpx.Client, openai_fake: FakeOpenAI, behaviour: Behaviour, kind: str, timeout: float
) -> None:
    openai_fake.behaviour = behaviour
    connection = create(api, **openai_connection(openai_fake, timeout=timeout))
    result = api.post(f"/api/connections/{connection['id']}/test").json()
    assert (result["success"], result["error_kind"]) == (False, kind)
    assert result["response_preview"] is None


def test_unreachable_says_what_to_check(api: httpx.Client) -> None:
    connection = create(
        api,
        connection_type="remote",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        model_name="m",
        max_retries=0,
    )
    result = api.post(f"/api/connections/{connection['id']}/test").json()
    assert result["error_kind"] == "unreachable"
    assert "is the server running" in result["error"]


def test_inactive_connection_keeps_its_status(api: httpx.Client, openai_fake: FakeOpenAI) -> None:
    connection = create(api, **openai_connection(openai_fake, is_active=False))
    result = api.post(f"/api/connections/{connection['id']}/test").json()
    assert result["success"] is True
    assert result["status"] == "inactive"


def test_history_newest_first(api: httpx.Client, openai_fake: FakeOpenAI, server: Server) -> None:
    connection = create(api, **openai_connection(openai_fake))
    url = f"/api/connections/{connection['id']}"
    api.post(f"{url}/test")
    openai_fake.behaviour = Behaviour.unauthorized
    api.post(f"{url}/test")
    page = api.get(f"{url}/health-checks").json()
    assert page["total"] == 2
    newest, oldest = page["items"]
    assert (newest["success"], newest["error_kind"], newest["http_status"]) == (False, "auth", 401)
    assert (oldest["success"], oldest["kind"]) == (True, "manual")
    assert oldest["response_preview"] == openai_fake.reply.text
    assert oldest["ttft_ms"] is not None
    one = api.get(f"{url}/health-checks", params={"limit": 1, "offset": 1}).json()
    assert [c["id"] for c in one["items"]] == [oldest["id"]]
    assert api.get(f"{url}/health-checks", params={"limit": 0}).status_code == 422
    api.delete(url)
    assert api.get(f"{url}/health-checks").status_code == 404
    assert server.db.query("SELECT count(*) FROM llm_connection_health_checks") == [(0,)]


def test_unsaved_configuration(api: httpx.Client, openai_fake: FakeOpenAI, server: Server) -> None:
    body = {"connection": {"name": "Draft", **openai_connection(openai_fake)}, "prompt": "Hi"}
    response = api.post("/api/connections/test", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["success"] is True
    assert result["status"] is None
    assert server.db.query("SELECT count(*) FROM llm_connections") == [(0,)]
    assert server.db.query("SELECT count(*) FROM llm_connection_health_checks") == [(0,)]
    bad = api.post(
        "/api/connections/test",
        json={"connection": {"name": "Draft", "connection_type": "remote", "model_name": "m"}},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "connection.base_url"


def test_an_edit_is_tested_before_saving_with_the_stored_key(
    api: httpx.Client, openai_fake: FakeOpenAI, server: Server
) -> None:
    openai_fake.models.append("other-model")
    url = f"/api/connections/{create(api, **openai_connection(openai_fake))['id']}"
    edit = {"changes": {"model_name": "other-model", "temperature": 0.5}, "prompt": "Hi"}
    tested = api.post(f"{url}/test", json=edit)
    assert tested.status_code == 200, tested.text
    assert tested.json()["success"] is True and tested.json()["status"] is None, tested.text
    sent = openai_fake.requests[-1]
    assert (sent.body["model"], sent.body["temperature"]) == ("other-model", 0.5)
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # the stored key went along
    assert api.get(url).json()["model_name"] == "fake-model"  # nothing saved ...
    assert server.db.query("SELECT count(*) FROM llm_connection_health_checks") == [(0,)]
    listed = api.post(f"{url}/models", json={"changes": {"model_name": "x"}})
    assert listed.json() == {"models": openai_fake.models}

    with FakeOpenAI(api_key=KEY) as other:  # another host: the stored key stays behind
        moved = {"changes": {"base_url": f"{other.url}/v1"}}
        for path in ("test", "models"):
            refused = api.post(f"{url}/{path}", json=moved)
            assert refused.status_code == 422
            assert refused.json()["error"]["field"] == "changes.api_key"
        assert other.requests == []
        moved["changes"]["api_key"] = KEY
        assert api.post(f"{url}/test", json=moved).json()["success"] is True
        assert other.requests[-1].headers["authorization"] == f"Bearer {KEY}"
        assert api.get(url).json()["base_url"] == f"{openai_fake.url}/v1"

    for changes, field in (
        ({"temperature": 7}, "changes.temperature"),
        ({"connection_type": "remote", "base_url": None}, "changes.base_url"),
    ):
        bad = api.post(f"{url}/test", json={"changes": changes})
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 1}, "temperature"),
    ],
)
def test_bad_test_body(
    api: httpx.Client, openai_fake: FakeOpenAI, body: dict[str, Any], field: str
) -> None:
    connection = create(api, **openai_connection(openai_fake))
    response = api.post(f"/api/connections/{connection['id']}/test", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert openai_fake.requests == []


def test_unknown_connection_is_404(api: httpx.Client) -> None:
    assert api.post("/api/connections/nope/test").status_code == 404
    assert api.get("/api/connections/nope/models").status_code == 404


def test_models(api: httpx.Client, openai_fake: FakeOpenAI) -> None:
    connection = create(api, **openai_connection(openai_fake))
    response = api.get(f"/api/connections/{connection['id']}/models")
    assert response.json() == {"models": openai_fake.models}
    openai_fake.behaviour = Behaviour.unauthorized
    failed = api.get(f"/api/connections/{connection['id']}/models")
    assert failed.status_code == 502
    assert failed.json()["error"]["type"] == "auth"
    openai_fake.behaviour = Behaviour.hang
    api.patch(f"/api/connections/{connection['id']}", json={"timeout": 0.3})
    slow = api.get(f"/api/connections/{connection['id']}/models")
    assert slow.status_code == 504
    assert slow.json()["error"]["type"] == "timeout"


def test_status_is_testing_while_the_test_runs(api: httpx.Client, openai_fake: FakeOpenAI) -> None:
    openai_fake.behaviour = Behaviour.slow_first_token
    openai_fake.delay = 1.5
    connection = create(api, **openai_connection(openai_fake))
    url = f"/api/connections/{connection['id']}"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(api.post, f"{url}/test")
        seen = set()
        while not running.done():
            seen.add(api.get(url).json()["status"])
            time.sleep(0.05)
        assert running.result().json()["success"] is True
    assert "testing" in seen
    assert api.get(url).json()["status"] == "active"


def test_a_restart_clears_tests_left_running(fresh_database: Database, tmp_path: Path) -> None:
    first = start_server(fresh_database, tmp_path / "data")
    try:
        with first.client() as client:
            created = client.post(
                "/api/connections",
                json={"name": "Stuck", "connection_type": "local", "model_name": "m"},
            ).json()
    finally:
        first.stop()
    fresh_database.execute("UPDATE llm_connections SET status = 'testing'")
    second = start_server(fresh_database, tmp_path / "data")
    try:
        with second.client() as client:
            assert client.get(f"/api/connections/{created['id']}").json()["status"] == "unknown"
        assert "left 'testing'" in second.log()
    finally:
        second.stop()
