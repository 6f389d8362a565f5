"""The guide's REST API end to end over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Database, Server, start_server
from tests.test_secrets import _serve_once as serve_once
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.secrets import generate_key

# The guide's "Create Connection (cURL)" body, byte for byte.
GUIDE_CURL_BODY = """{
    "name": "Local Ollama",
    "connection_type": "local",
    "base_url": "http://localhost:11434",
    "model_name": "llama3.2:3b",
    "use_in_livekit": true,
    "use_in_mcp": true,
    "is_active": true
  }"""

# The guide's per-type examples (keys replaced by longer fake ones).
GUIDE_EXAMPLES: list[dict[str, Any]] = [
    {
        "name": "Production vLLM",
        "connection_type": "remote",
        "base_url": "http://192.168.1.100:8000/v1",
        "model_name": "meta-llama/Llama-3.1-8B-Instruct",
        "timeout": 60,
        "use_in_livekit": True,
    },
    {
        "name": "OpenAI GPT-4",
        "connection_type": "openai",
        "base_url": "https://api.openai.com/v1",
        "model_name": "gpt-4",
        "api_key": "sk-test-openai-000000000000",
        "organization_id": "org-1",
        "use_in_livekit": True,
        "use_in_mcp": True,
    },
    {
        "name": "Claude Sonnet",
        "connection_type": "anthropic",
        "base_url": "https://api.anthropic.com/v1",
        "model_name": "claude-3-5-sonnet-20241022",
        "api_key": "sk-ant-test-000000000000",
        "use_in_livekit": True,
        "use_in_mcp": True,
    },
    {
        "name": "Gemini Pro",
        "connection_type": "google",
        "base_url": "https://generativelanguage.googleapis.com/v1",
        "model_name": "gemini-pro",
        "api_key": "AIzaTest000000000000",
        "use_in_automation": True,
    },
    {
        "name": "Groq Llama",
        "connection_type": "groq",
        "base_url": "https://api.groq.com/openai/v1",
        "model_name": "llama-3.1-70b-versatile",
        "api_key": "gsk_test000000000000",
        "use_in_livekit": True,
    },
    {
        "name": "Together AI",
        "connection_type": "together",
        "base_url": "https://api.together.xyz/v1",
        "model_name": "meta-llama/Llama-3-70b-chat-hf",
        "api_key": "together-test-0000000000",
        "use_in_automation": True,
    },
]


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"connection_type": "local", "model_name": "llama3.2:3b", **fields}
    response = api.post("/api/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


def test_guide_curl_example_verbatim(api: httpx.Client) -> None:
    response = api.post(
        "/api/connections", content=GUIDE_CURL_BODY, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Local Ollama"
    assert body["api_format"] == "ollama"
    assert body["use_in_livekit"] is True and body["use_in_mcp"] is True
    assert body["use_in_automation"] is False
    assert body["status"] == "unknown"
    detail = api.get(f"/api/connections/{body['id']}").json()
    assert detail.pop("health")["last_day"]["checks"] == 0
    assert detail == body


@pytest.mark.parametrize("example", GUIDE_EXAMPLES, ids=lambda e: e["connection_type"])
def test_guide_examples_create(api: httpx.Client, example: dict[str, Any]) -> None:
    body = create(api, **example)
    for field, value in example.items():
        if field == "api_key":
            assert body["has_api_key"] is True
            assert "api_key" not in body
        else:
            assert body[field] == value, field


def test_defaults(api: httpx.Client) -> None:
    body = create(api, name="Defaults")
    assert body["is_active"] is True
    assert (body["use_in_livekit"], body["use_in_mcp"], body["use_in_automation"]) == (
        False,
        False,
        False,
    )
    assert body["status"] == "unknown"
    assert body["timeout"] == 60
    assert body["max_retries"] == 2
    assert body["has_api_key"] is False and body["api_key_mask"] is None
    assert body["consecutive_failures"] == 0
    assert body["tags"] == [] and body["extra_headers"] == {}
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("connection_type", "base_url", "api_format"),
    [
        ("local", "http://localhost:11434", "ollama"),
        ("openai", "https://api.openai.com/v1", "openai"),
        ("anthropic", "https://api.anthropic.com/v1", "anthropic"),
        ("google", "https://generativelanguage.googleapis.com/v1", "google"),
        ("groq", "https://api.groq.com/openai/v1", "openai"),
        ("together", "https://api.together.xyz/v1", "openai"),
    ],
)
def test_type_fills_base_url_and_format(
    api: httpx.Client, connection_type: str, base_url: str, api_format: str
) -> None:
    body = create(api, name=f"T {connection_type}", connection_type=connection_type)
    assert body["base_url"] == base_url
    assert body["api_format"] == api_format


def test_local_llama_cpp_is_openai_style_and_format_can_be_overridden(api: httpx.Client) -> None:
    llama = create(api, name="llama.cpp", base_url="http://localhost:8080/")
    assert llama["api_format"] == "openai"
    assert llama["base_url"] == "http://localhost:8080"
    forced = create(api, name="forced", base_url="http://localhost:8080", api_format="ollama")
    assert forced["api_format"] == "ollama"


def test_azure_needs_deployment_and_version(api: httpx.Client) -> None:
    base = {
        "name": "Azure",
        "connection_type": "azure",
        "model_name": "gpt-4o",
        "base_url": "https://acme.openai.azure.com",
    }
    missing = api.post("/api/connections", json={**base, "deployment": "gpt4o"})
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "api_version"
    ok = api.post(
        "/api/connections", json={**base, "deployment": "gpt4o", "api_version": "2024-10-21"}
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["api_format"] == "openai"


def test_get_by_id_and_by_name(api: httpx.Client) -> None:
    body = create(api, name="Local Ollama")
    assert api.get(f"/api/connections/{body['id']}").json()["id"] == body["id"]
    assert api.get("/api/connections/local ollama").json()["id"] == body["id"]


def test_patch_changes_only_what_is_sent(api: httpx.Client) -> None:
    body = create(api, name="P", tags=["dev"], temperature=0.5)
    response = api.patch(
        f"/api/connections/{body['id']}", json={"model_name": "qwen2.5:7b", "temperature": None}
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["model_name"] == "qwen2.5:7b"
    assert patched["temperature"] is None
    assert patched["tags"] == ["dev"]
    assert patched["updated_at"] >= body["updated_at"]
    detail = api.get(f"/api/connections/{body['id']}").json()
    detail.pop("health")
    assert detail == patched


def test_patch_type_change_follows_new_defaults(api: httpx.Client) -> None:
    body = create(api, name="Switch", connection_type="openai", model_name="gpt-4o")
    patched = api.patch(
        f"/api/connections/{body['id']}",
        json={"connection_type": "anthropic", "model_name": "claude-sonnet-4"},
    ).json()
    assert patched["base_url"] == "https://api.anthropic.com/v1"
    assert patched["api_format"] == "anthropic"
    # A base URL the user chose stays.
    custom = create(api, name="Custom", connection_type="remote", base_url="http://gpu:8000/v1")
    moved = api.patch(f"/api/connections/{custom['id']}", json={"connection_type": "aws_spot"})
    assert moved.json()["base_url"] == "http://gpu:8000/v1"


def test_patch_checks_the_merged_connection(api: httpx.Client) -> None:
    body = create(api, name="A", connection_type="openai")
    response = api.patch(f"/api/connections/{body['id']}", json={"connection_type": "azure"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "base_url"  # OpenAI's URL is no Azure URL
    response = api.patch(
        f"/api/connections/{body['id']}",
        json={"connection_type": "azure", "base_url": "https://acme.openai.azure.com"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "deployment"
    assert api.get(f"/api/connections/{body['id']}").json()["connection_type"] == "openai"


def test_delete(api: httpx.Client) -> None:
    body = create(api, name="Gone")
    assert api.delete(f"/api/connections/{body['id']}").status_code == 204
    assert api.get(f"/api/connections/{body['id']}").status_code == 404
    assert api.delete(f"/api/connections/{body['id']}").status_code == 404


def test_activate_and_deactivate(api: httpx.Client) -> None:
    body = create(api, name="Toggle")
    off = api.post(f"/api/connections/{body['id']}/deactivate")
    assert off.status_code == 200
    assert (off.json()["is_active"], off.json()["status"]) == (False, "inactive")
    on = api.post(f"/api/connections/{body['id']}/activate").json()
    assert (on["is_active"], on["status"]) == (True, "unknown")
    inactive = create(api, name="Born inactive", is_active=False)
    assert inactive["status"] == "inactive"


def test_filters(api: httpx.Client) -> None:
    create(api, name="ollama-lk", use_in_livekit=True, tags=["dev", "local"])
    create(api, name="ollama-mcp", use_in_mcp=True, tags=["dev"], description="Tool box")
    create(
        api,
        name="gpt",
        connection_type="openai",
        model_name="gpt-4o",
        use_in_automation=True,
        tags=["prod"],
    )
    create(
        api,
        name="claude",
        connection_type="anthropic",
        model_name="claude-sonnet-4",
        use_in_livekit=True,
        is_active=False,
        tags=["prod", "fast"],
    )

    def get(**params: Any) -> list[str]:
        return names(api.get("/api/connections", params=params))

    assert get(connection_type="local") == ["ollama-lk", "ollama-mcp"]
    assert get(use_in_livekit="true") == ["claude", "ollama-lk"]
    assert get(use_in_livekit="true", is_active="true") == ["ollama-lk"]
    assert get(use_in_mcp="true") == ["ollama-mcp"]
    assert get(use_in_automation="true") == ["gpt"]
    assert get(is_active="false") == ["claude"]
    assert get(status="inactive") == ["claude"]
    assert get(status="unknown") == ["gpt", "ollama-lk", "ollama-mcp"]
    assert get(tag="dev") == ["ollama-lk", "ollama-mcp"]
    assert get(tag=["dev", "local"]) == ["ollama-lk"]
    assert get(tag=["prod", "fast"]) == ["claude"]
    assert get(tag="nope") == []
    assert get(q="OLLAMA") == ["ollama-lk", "ollama-mcp"]
    assert get(q="tool") == ["ollama-mcp"]
    assert get(q="gpt-4") == ["gpt"]
    assert get(q="%") == []


def test_pagination_and_sort(api: httpx.Client) -> None:
    for i in range(7):
        create(api, name=f"c{i}", priority=i % 3)
    page = api.get("/api/connections", params={"limit": 3, "offset": 0}).json()
    assert page["total"] == 7 and page["limit"] == 3 and page["offset"] == 0
    assert [c["name"] for c in page["items"]] == ["c0", "c1", "c2"]
    last = api.get("/api/connections", params={"limit": 3, "offset": 6}).json()
    assert [c["name"] for c in last["items"]] == ["c6"]
    newest = names(api.get("/api/connections", params={"sort": "-created_at", "limit": 2}))
    assert newest == ["c6", "c5"]
    by_priority = names(api.get("/api/connections", params={"sort": "-priority"}))
    assert by_priority[:2] == ["c2", "c5"]
    typo = api.get("/api/connections", params={"use_in_livekt": "true"})
    assert typo.status_code == 422
    assert typo.json()["error"]["field"] == "use_in_livekt"


def test_summary_counts(api: httpx.Client, server: Server) -> None:
    create(api, name="a", use_in_livekit=True, use_in_mcp=True)
    create(api, name="b", use_in_livekit=True, use_in_automation=True)
    create(api, name="c", use_in_livekit=True, is_active=False)
    broken = create(api, name="d", use_in_mcp=True)
    server.db.execute(
        f"UPDATE llm_connections SET status = 'error' WHERE name = '{broken['name']}'"
    )
    summary = api.get("/api/connections/summary").json()
    assert summary == {
        "total": 4,
        "active": 3,
        "livekit_ready": 2,
        "mcp_ready": 1,
        "automation_ready": 1,
        "in_error": 1,
    }


def test_openapi_and_docs(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/connections",
        "/api/connections/{connection_id}",
        "/api/connections/{connection_id}/activate",
        "/api/connections/{connection_id}/deactivate",
        "/api/connections/summary",
    ):
        assert path in paths, path
    create_schema = json.dumps(spec["components"]["schemas"]["ConnectionRead"])
    assert "api_key_mask" in create_schema and '"api_key"' not in create_schema
    assert "swagger-ui" in api.get("/docs").text


# Credentials that vendors carry in headers of their own: all must be treated as secrets.
HEADER_SECRETS = {
    "X-Auth-Token": "auth-token-value-0123456789",
    "Ocp-Apim-Subscription-Key": "apim-subscription-abcdef9876",
    "X-Amz-Security-Token": "amz-session-token-zyxw5555",
}
MASKS = {
    "X-Auth-Token": "…6789",
    "Ocp-Apim-Subscription-Key": "…9876",
    "X-Amz-Security-Token": "…5555",
}


def _chat(client: httpx.Client, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text


def _stored_headers(db: Database) -> str:
    return repr(db.query("SELECT extra_headers FROM llm_connections"))


def test_extra_headers_are_encrypted_masked_and_sent(api: httpx.Client, server: Server) -> None:
    with FakeOpenAI(api_key=None) as fake:
        body = {
            "name": "Headers",
            "connection_type": "remote",
            "base_url": f"{fake.url}/v1",
            "model_name": "fake-model",
            "extra_headers": HEADER_SECRETS,
        }
        created = api.post("/api/connections", json=body)
        assert created.status_code == 201, created.text
        url = f"/api/connections/{created.json()['id']}"
        shown = [created, api.get(url), api.get("/api/connections")]
        assert created.json()["extra_headers"] == MASKS
        assert api.get(url).json()["extra_headers"] == MASKS

        _chat(api, "Headers")
        sent = fake.requests[-1].headers
        assert {name: sent[name.lower()] for name in HEADER_SECRETS} == HEADER_SECRETS

        # Another change keeps them (still encrypted, still sent); sending them replaces them.
        shown.append(api.patch(url, json={"description": "still there"}))
        _chat(api, "Headers")
        assert fake.requests[-1].headers["x-auth-token"] == HEADER_SECRETS["X-Auth-Token"]
        replaced = api.patch(url, json={"extra_headers": {"X-Tenant": "tenant-secret-4242"}})
        assert replaced.json()["extra_headers"] == {"X-Tenant": "…4242"}
        shown.append(replaced)
        _chat(api, "Headers")
        sent = fake.requests[-1].headers
        assert sent["x-tenant"] == "tenant-secret-4242" and "x-auth-token" not in sent

    stored = _stored_headers(server.db)
    for secret in [*HEADER_SECRETS.values(), "tenant-secret-4242"]:
        assert secret not in stored
        assert secret not in server.log()
        for response in shown:
            assert secret not in response.text
    assert "v1." in stored


def _create_with_headers(server: Server, base_url: str) -> str:
    body = {
        "name": "Legacy",
        "connection_type": "remote",
        "base_url": base_url,
        "model_name": "fake-model",
        "extra_headers": {"X-Auth-Token": "placeholder-value"},
    }
    with server.client() as client:
        created = client.post("/api/connections", json=body)
    assert created.status_code == 201, created.text
    connection_id: str = created.json()["id"]
    return connection_id


def test_plaintext_headers_stored_before_are_encrypted_at_start(
    fresh_database: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    with FakeOpenAI(api_key=None) as fake:
        server = start_server(fresh_database, data_dir)
        try:
            connection_id = _create_with_headers(server, f"{fake.url}/v1")
        finally:
            server.stop()
        # What an older version wrote: the value in plain text.
        legacy = json.dumps({"X-Auth-Token": "legacy-plain-token-7777"})
        fresh_database.execute(f"UPDATE llm_connections SET extra_headers = '{legacy}'")

        server = start_server(fresh_database, data_dir)
        try:
            assert "legacy-plain-token-7777" not in _stored_headers(fresh_database)
            assert "v1." in _stored_headers(fresh_database)
            with server.client() as client:
                shown = client.get(f"/api/connections/{connection_id}").json()
                assert shown["extra_headers"] == {"X-Auth-Token": "…7777"}
                _chat(client, "Legacy")
            assert fake.requests[-1].headers["x-auth-token"] == "legacy-plain-token-7777"
        finally:
            server.stop()
        assert "legacy-plain-token-7777" not in server.log()


def test_start_refuses_a_key_that_cannot_read_the_header_values(
    fresh_database: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(fresh_database, data_dir)
    try:
        _create_with_headers(server, "http://127.0.0.1:9/v1")  # no api_key: only headers
    finally:
        server.stop()
    wrong = serve_once(fresh_database, data_dir, UMP_SECRET_KEY=generate_key())
    assert wrong.returncode == 2
    assert "header values or webhook secrets encrypted with server key" in wrong.stderr


def test_start_refuses_a_key_that_cannot_read_the_webhook_secrets(
    fresh_database: Database, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(fresh_database, data_dir)
    try:
        with server.client() as client:
            hook = {"url": "http://127.0.0.1:9/hook", "events": ["*"]}
            assert client.post("/api/webhooks", json=hook).status_code == 201
    finally:
        server.stop()
    wrong = serve_once(fresh_database, data_dir, UMP_SECRET_KEY=generate_key())
    assert wrong.returncode == 2
    assert "webhook secrets encrypted with server key" in wrong.stderr
