"""``POST /api/connections/models``: the Add dialog's model picker for a configuration not saved
yet. It answers as ``GET /api/connections/{id}/models`` would once saved, stores nothing, and
keeps to the same rules (validation, SSRF guard, upstream errors in the one error shape)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.base import Behaviour, FakeUpstream
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI

KEY = "sk-models-endpoint-key-0000000000"
URL = "/api/connections/models"


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, models=("gpt-fake", "gpt-fake-mini")) as fake:
        yield fake


def draft(fake: FakeUpstream, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Draft",
        "connection_type": "openai",
        "base_url": f"{fake.url}/v1",
        "model_name": "gpt-fake",
        "api_key": KEY,
        "max_retries": 0,
        **fields,
    }


def test_lists_the_models_and_stores_nothing(
    api: httpx.Client, openai_fake: FakeOpenAI, server: Server
) -> None:
    response = api.post(URL, json={"connection": draft(openai_fake)})
    assert response.status_code == 200, response.text
    assert response.json() == {"models": ["gpt-fake", "gpt-fake-mini"]}
    assert openai_fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in response.text
    assert server.db.query("SELECT count(*) FROM llm_connections") == [(0,)]
    assert server.db.query("SELECT count(*) FROM llm_connection_health_checks") == [(0,)]


@pytest.mark.parametrize(
    ("fake_type", "fields"),
    [
        (FakeAnthropic, {"connection_type": "anthropic", "path": "/v1"}),
        (FakeOllama, {"connection_type": "local", "path": "", "api_format": "ollama"}),
    ],
    ids=["anthropic", "ollama"],
)
def test_answers_as_the_saved_connection_would(
    api: httpx.Client, fake_type: type[FakeUpstream], fields: dict[str, Any]
) -> None:
    key = KEY if fake_type is FakeAnthropic else None
    with fake_type(api_key=key, models=("first-model", "second-model")) as fake:
        path = fields["path"]
        settings = {k: v for k, v in fields.items() if k != "path"}
        body = draft(fake, **settings, base_url=f"{fake.url}{path}", api_key=key)
        unsaved = api.post(URL, json={"connection": body})
        assert unsaved.status_code == 200, unsaved.text
        created = api.post("/api/connections", json=body)
        assert created.status_code == 201, created.text
        saved = api.get(f"/api/connections/{created.json()['id']}/models")
    assert unsaved.json() == saved.json()
    assert len(unsaved.json()["models"]) == 2


def test_name_and_model_may_be_left_out(api: httpx.Client, openai_fake: FakeOpenAI) -> None:
    body = {k: v for k, v in draft(openai_fake).items() if k not in ("name", "model_name")}
    response = api.post(URL, json={"connection": body})
    assert response.status_code == 200, response.text
    assert response.json() == {"models": ["gpt-fake", "gpt-fake-mini"]}


def test_upstream_failures_in_the_error_shape(api: httpx.Client, openai_fake: FakeOpenAI) -> None:
    openai_fake.behaviour = Behaviour.unauthorized
    refused = api.post(URL, json={"connection": draft(openai_fake)})
    assert refused.status_code == 502
    assert refused.json()["error"]["type"] == "auth"
    assert KEY not in refused.text
    openai_fake.behaviour = Behaviour.hang
    slow = api.post(URL, json={"connection": draft(openai_fake, timeout=0.3)})
    assert slow.status_code == 504
    assert slow.json()["error"]["type"] == "timeout"


@pytest.mark.parametrize(
    ("connection", "field"),
    [
        ({"connection_type": "remote", "base_url": None}, "connection.base_url"),
        ({"base_url": "http://169.254.169.254/latest"}, "connection.base_url"),
        ({"connection_type": "azure"}, "connection.deployment"),
        ({"model_name": ""}, "connection.model_name"),
        ({"timeout": 0}, "connection.timeout"),
    ],
)
def test_an_invalid_configuration_names_its_field(
    api: httpx.Client, openai_fake: FakeOpenAI, connection: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**draft(openai_fake), **connection}.items() if v is not None}
    response = api.post(URL, json={"connection": body})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert openai_fake.requests == []


def test_the_body_needs_a_connection(api: httpx.Client) -> None:
    response = api.post(URL, json={})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "connection"
