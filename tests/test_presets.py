"""The guide's presets: listed, applied as connections plus a pool, keys asked for."""

from __future__ import annotations

import httpx

KEYS = {
    "anthropic": "sk-ant-preset-0000000000",
    "openai": "sk-preset-openai-00000000",
    "groq": "gsk_preset000000000000",
}


def names(api: httpx.Client) -> list[str]:
    return sorted(c["name"] for c in api.get("/api/connections").json()["items"])


def test_presets_are_listed(api: httpx.Client) -> None:
    listed = {p["slug"]: p for p in api.get("/api/presets").json()}
    assert set(listed) == {"local-dev-stack", "production-stack", "multi-cloud"}
    production = listed["production-stack"]
    assert production["name"] == "Production Stack"
    assert production["strategy"] == "priority"
    assert [(c["name"], c["priority"], c["needs_api_key"]) for c in production["connections"]] == [
        ("Claude Sonnet", 1, True),
        ("OpenAI GPT-4", 2, True),
        ("Groq Llama", 3, True),
    ]
    multi = listed["multi-cloud"]
    assert multi["skipped"] == []
    bedrock = [c for c in multi["connections"] if c["connection_type"] == "bedrock"]
    assert [(c["name"], c["needs_api_key"], c["needs_aws_region"]) for c in bedrock] == [
        ("AWS Bedrock", False, True)
    ]
    assert not any(c["needs_api_key"] for c in listed["local-dev-stack"]["connections"])


def test_keys_are_asked_for_never_invented(api: httpx.Client) -> None:
    missing = api.post(
        "/api/presets/production-stack/apply", json={"api_keys": {"anthropic": KEYS["anthropic"]}}
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "api_keys.openai"
    unknown = api.post(
        "/api/presets/production-stack/apply", json={"api_keys": {**KEYS, "mistral": "x" * 20}}
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "api_keys.mistral"
    assert names(api) == []


def test_production_stack_becomes_a_priority_pool(api: httpx.Client) -> None:
    response = api.post(
        "/api/presets/Production Stack/apply", json={"api_keys": KEYS, "use_in_livekit": True}
    )
    assert response.status_code == 201, response.text
    applied = response.json()
    for key in KEYS.values():
        assert key not in response.text
    assert all(c["has_api_key"] and c["use_in_livekit"] for c in applied["connections"])
    pool = applied["pool"]
    assert (pool["name"], pool["strategy"]) == ("Production Stack", "priority")
    assert [(m["connection_name"], m["priority"]) for m in pool["members"]] == [
        ("Claude Sonnet", 1),
        ("OpenAI GPT-4", 2),
        ("Groq Llama", 3),
    ]

    again = api.post("/api/presets/production-stack/apply", json={"api_keys": KEYS})
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "prefix"
    second = api.post(
        "/api/presets/production-stack/apply", json={"api_keys": KEYS, "prefix": "EU "}
    )
    assert second.status_code == 201
    assert second.json()["pool"]["name"] == "EU Production Stack"


def test_failure_midway_creates_nothing(api: httpx.Client) -> None:
    # A connection already holds the pool's name: the pool is refused after the connections
    # were made, and they are removed again.
    blocker = {"name": "Local Dev Stack", "connection_type": "local", "model_name": "m"}
    assert api.post("/api/connections", json=blocker).status_code == 201
    response = api.post("/api/presets/local-dev-stack/apply", json={})
    assert response.status_code == 409
    assert names(api) == ["Local Dev Stack"]
    assert api.get("/api/pools").json()["total"] == 0
    ok = api.post("/api/presets/local-dev-stack/apply", json={"pool_name": "Dev"})
    assert ok.status_code == 201
    assert [c["api_format"] for c in ok.json()["connections"]] == ["ollama", "openai"]


def test_unknown_preset_is_404(api: httpx.Client) -> None:
    response = api.post("/api/presets/enterprise/apply", json={})
    assert response.status_code == 404
    assert "local-dev-stack" in response.json()["error"]["message"]
