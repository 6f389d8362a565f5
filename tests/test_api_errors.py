"""Bad input: always a 4xx in the one error shape, naming the field; never a 500 or a stray row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_database, start_server

VALID: dict[str, Any] = {
    "name": "Valid",
    "connection_type": "local",
    "model_name": "llama3.2:3b",
}

# (what is sent over VALID, status, field named)
BAD_CREATES: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("unknown type", {"connection_type": "mainframe"}, 422, "connection_type"),
    ("missing name", {"name": None}, 422, "name"),
    ("blank name", {"name": "   "}, 422, "name"),
    ("missing model", {"model_name": None}, 422, "model_name"),
    ("ftp base_url", {"base_url": "ftp://host/v1"}, 422, "base_url"),
    ("base_url without host", {"base_url": "http://"}, 422, "base_url"),
    ("base_url with credentials", {"base_url": "https://u:p@host/v1"}, 422, "base_url"),
    ("base_url with key in query", {"base_url": "https://host/v1?key=abc"}, 422, "base_url"),
    ("remote without base_url", {"connection_type": "remote"}, 422, "base_url"),
    ("negative timeout", {"timeout": -1}, 422, "timeout"),
    ("absurd timeout", {"timeout": 10**9}, 422, "timeout"),
    ("timeout as text", {"timeout": "soon"}, 422, "timeout"),
    ("negative retries", {"max_retries": -1}, 422, "max_retries"),
    ("temperature too high", {"temperature": 7}, 422, "temperature"),
    ("negative temperature", {"temperature": -0.1}, 422, "temperature"),
    ("zero max_tokens", {"max_tokens": 0}, 422, "max_tokens"),
    ("absurd max_tokens", {"max_tokens": 10**12}, 422, "max_tokens"),
    ("negative cost", {"input_cost_per_million": -1}, 422, "input_cost_per_million"),
    ("unknown field", {"colour": "blue"}, 422, "colour"),
    (
        "secret in extra_headers",
        {"extra_headers": {"Authorization": "Bearer x"}},
        422,
        "extra_headers.Authorization",
    ),
    ("header injection", {"extra_headers": {"X-A": "a\r\nX-B: b"}}, 422, "extra_headers.X-A"),
    ("control in header", {"extra_headers": {"X-A": "a\x01b"}}, 422, "extra_headers.X-A"),
    ("DEL in header", {"extra_headers": {"X-A": "a\x7fb"}}, 422, "extra_headers.X-A"),
    *[
        (
            f"{name} header",
            {"extra_headers": {"X-Fine": "1", name: "x"}},
            422,
            f"extra_headers.{name}",
        )
        for name in (
            "Host",
            "content-length",
            "Transfer-Encoding",
            "Connection",
            "Keep-Alive",
            "TE",
            "Trailer",
            "Upgrade",
            "Proxy-Connection",
        )
    ],
    ("header twice", {"extra_headers": {"X-A": "1", "x-a": "2"}}, 422, "extra_headers.x-a"),
    ("control in api_key", {"api_key": "sk-abc\x01defghijklmnop"}, 422, "api_key"),
    ("newline in api_key", {"api_key": "sk-abc\ndefghijklmnop"}, 422, "api_key"),
    ("space in api_key", {"api_key": "sk-abc defghijklmnop"}, 422, "api_key"),
    ("control in organization_id", {"organization_id": "org\x07x"}, 422, "organization_id"),
    ("control in api_version", {"api_version": "2024\x00-10"}, 422, "api_version"),
    ("control in deployment", {"deployment": "gpt\x1b[0m"}, 422, "deployment"),
    ("NUL in description", {"description": "a\x00b"}, 422, "description"),
    ("surrogate in description", {"description": "a\ud800b"}, 422, "description"),
    ("NUL in model_name", {"model_name": "m\x00"}, 422, "model_name"),
    ("NUL in a tag", {"tags": ["ok", "t\x00"]}, 422, "tags.1"),
    ("NUL in owner", {"owner": "\x00"}, 422, "owner"),
    ("control in a tag", {"tags": ["a\tb"]}, 422, "tags.0"),
    ("space in base_url", {"base_url": "http://my host:8080/v1"}, 422, "base_url"),
    ("bracket in base_url", {"base_url": "http://host/v1<script>"}, 422, "base_url"),
    ("flag as text", {"use_in_livekit": "yes"}, 422, "use_in_livekit"),
    ("flag as number", {"use_in_mcp": 1}, 422, "use_in_mcp"),
    ("flag as string true", {"is_active": "true"}, 422, "is_active"),
    ("timeout as numeric text", {"timeout": "30"}, 422, "timeout"),
    ("timeout as bool", {"timeout": True}, 422, "timeout"),
    ("retries as text", {"max_retries": "2"}, 422, "max_retries"),
    ("priority as float", {"priority": 1.5}, 422, "priority"),
    ("weight as whole float", {"weight": 2.0}, 422, "weight"),
    ("description too long", {"description": "d" * 2001}, 422, "description"),
    ("tag too long", {"tags": ["t" * 65]}, 422, "tags.0"),
    ("owner too long", {"owner": "o" * 201}, 422, "owner"),
    ("huge number", {"timeout": 10**400}, 422, "timeout"),
    ("nested junk", {"extra_headers": {"X-A": {"deep": [1, 2]}}}, 422, "extra_headers.X-A"),
    ("tags not a list", {"tags": "dev"}, 422, "tags"),
    ("too many tags", {"tags": [f"t{i}" for i in range(51)]}, 422, "tags"),
    ("flag not a bool", {"use_in_livekit": "perhaps"}, 422, "use_in_livekit"),
    ("unknown api_format", {"api_format": "soap"}, 422, "api_format"),
    ("name too long", {"name": "n" * 201}, 422, "name"),
]


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message", "field"}
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("sent", "status", "field"), [c[1:] for c in BAD_CREATES], ids=[c[0] for c in BAD_CREATES]
)
def test_bad_create(
    api: httpx.Client, server: Server, sent: dict[str, Any], status: int, field: str | None
) -> None:
    body = {k: v for k, v in {**VALID, **sent}.items() if v is not None}
    content = json.dumps(body).encode()  # ASCII escapes: a lone surrogate gets through too
    headers = {"Content-Type": "application/json"}
    error = _error(api.post("/api/connections", content=content, headers=headers), status)
    assert error["field"] == field
    assert error["type"] == "validation_error"
    assert server.db.query("SELECT count(*) FROM llm_connections") == [(0,)]


def test_rejected_values_are_not_echoed(api: httpx.Client) -> None:
    secret = "sk-live-do-not-echo-0123456789"
    response = api.post("/api/connections", json={**VALID, "api_key": secret, "timeout": secret})
    assert response.status_code == 422
    assert secret not in response.text


def test_duplicate_name_is_409_whatever_the_case(api: httpx.Client, server: Server) -> None:
    assert api.post("/api/connections", json=VALID).status_code == 201
    error = _error(api.post("/api/connections", json={**VALID, "name": "VALID"}), 409)
    assert error == {
        "type": "conflict",
        "message": "a connection or pool named 'VALID' already exists",
        "field": "name",
    }
    other = api.post("/api/connections", json={**VALID, "name": "Other"}).json()
    error = _error(api.patch(f"/api/connections/{other['id']}", json={"name": "valid"}), 409)
    assert error["field"] == "name"
    assert server.db.query("SELECT count(*) FROM llm_connections") == [(2,)]
    assert api.get(f"/api/connections/{other['id']}").json()["name"] == "Other"


@pytest.mark.parametrize(
    "ref", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "%20", "x" * 300]
)
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/activate"), ("POST", "/deactivate")],
)
def test_unknown_or_malformed_id_is_404(
    api: httpx.Client, ref: str, method: str, suffix: str
) -> None:
    body = {"description": "x"} if method == "PATCH" else None
    error = _error(api.request(method, f"/api/connections/{ref}{suffix}", json=body), 404)
    assert error["type"] == "not_found"
    assert error["field"] == "id"


def test_patch_rejects_nulls_and_unknown_fields(api: httpx.Client) -> None:
    created = api.post("/api/connections", json=VALID).json()
    url = f"/api/connections/{created['id']}"
    assert _error(api.patch(url, json={"name": None}), 422)["field"] == "name"
    assert _error(api.patch(url, json={"status": "active"}), 422)["field"] == "status"
    assert _error(api.patch(url, json={"timeout": 0}), 422)["field"] == "timeout"
    detail = api.get(url).json()
    detail.pop("health")
    assert detail == created


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "api_key_encrypted"}, "sort"),
        ({"connection_type": "mainframe"}, "connection_type"),
        ({"status": "sleepy"}, "status"),
        ({"is_active": "maybe"}, "is_active"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_list_params(api: httpx.Client, params: dict[str, Any], field: str) -> None:
    assert _error(api.get("/api/connections", params=params), 422)["field"] == field


def test_malformed_json_is_400(api: httpx.Client) -> None:
    response = api.post(
        "/api/connections", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert _error(response, 400)["type"] == "invalid_json"
    wrong_shape = api.post("/api/connections", json=["a", "list"])
    assert _error(wrong_shape, 422)["type"] == "validation_error"


def test_body_must_be_json(api: httpx.Client) -> None:
    response = api.post("/api/connections", data={"name": "form"})
    assert _error(response, 415)["field"] == "Content-Type"


def test_oversized_body_is_413(api: httpx.Client, server: Server) -> None:
    huge = {**VALID, "description": "x" * 2_000_000}
    assert _error(api.post("/api/connections", json=huge), 413)["type"] == "payload_too_large"

    def chunks() -> Any:
        for _ in range(40):
            yield b" " * 65536

    chunked = api.post(
        "/api/connections", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert _error(chunked, 413)["type"] == "payload_too_large"
    assert server.db.query("SELECT count(*) FROM llm_connections") == [(0,)]


def test_foreign_host_is_refused(api: httpx.Client) -> None:
    response = api.get("/api/connections", headers={"Host": "attacker.example"})
    assert _error(response, 400)["type"] == "invalid_host"
    assert api.get("/api/connections", headers={"Host": "localhost:8002"}).status_code == 200


def test_cross_origin_write_is_refused(api: httpx.Client, server: Server) -> None:
    response = api.post(
        "/api/connections", json=VALID, headers={"Origin": "https://attacker.example"}
    )
    assert _error(response, 403)["type"] == "cross_origin"
    same = api.post("/api/connections", json=VALID, headers={"Origin": server.url})
    assert same.status_code == 201


def test_unknown_route_and_method_use_the_error_shape(api: httpx.Client) -> None:
    assert _error(api.get("/api/nothing"), 404)["type"] == "not_found"
    assert _error(api.put("/api/connections", json={}), 405)["type"] == "method_not_allowed"


def test_extra_allowed_hosts(tmp_path: Path) -> None:
    db = next(make_database("sqlite", tmp_path))
    server = start_server(db, tmp_path / "data", UMP_ALLOWED_HOSTS="llm.internal, gw.local")
    try:
        with server.client() as client:
            for host in ("llm.internal", "gw.local:8002"):
                assert client.get("/healthz", headers={"Host": host}).status_code == 200
            assert client.get("/healthz", headers={"Host": "other.local"}).status_code == 400
    finally:
        server.stop()


def test_ints_are_numbers_and_floats_stay_floats(api: httpx.Client) -> None:
    body = {**VALID, "timeout": 30, "temperature": 1, "input_cost_per_million": 0}
    created = api.post("/api/connections", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["timeout"] == 30.0 and created.json()["temperature"] == 1.0


def test_every_offending_field_is_named_unknown_ones_first(api: httpx.Client) -> None:
    typo = {"name": "Typo", "connection_type": "local", "model": "llama3.2:3b"}
    error = _error(api.post("/api/connections", json=typo), 422)
    assert error == {
        "type": "validation_error",
        "message": "unknown field 'model' (did you mean 'model_name'?); model_name is required",
        "field": "model",
    }
    many = {**VALID, "timeout": "30", "use_in_mcp": "yes", "colour": "blue"}
    error = _error(api.post("/api/connections", json=many), 422)
    assert error["field"] == "colour"
    for named in ("unknown field 'colour'", "timeout", "use_in_mcp"):
        assert named in error["message"]
    assert "did you mean" not in error["message"]  # nothing is close to 'colour'
    created = api.post("/api/connections", json=VALID).json()
    patch = api.patch(f"/api/connections/{created['id']}", json={"descripton": "x"})
    assert "did you mean 'description'?" in _error(patch, 422)["message"]
    nested = {"connection": {**VALID, "modelname": "x"}}
    error = _error(api.post("/api/connections/test", json=nested), 422)
    assert error["field"] == "connection.modelname"
    assert "did you mean 'model_name'?" in error["message"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "a JSON object is required as the body"),
        (b"null", "the body must be a JSON object"),
        (b"[]", "the body must be a JSON object"),
        (b'"text"', "the body must be a JSON object"),
        (b"{}", "name is required; connection_type is required; model_name is required"),
    ],
)
def test_empty_or_null_body_says_what_is_wanted(
    api: httpx.Client, content: bytes, message: str
) -> None:
    headers = {"Content-Type": "application/json"}
    error = _error(api.post("/api/connections", content=content, headers=headers), 422)
    assert error["message"] == message
    assert "None" not in error["message"]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/connections?q=a%00b", "q"),
        ("/api/connections?tag=a%00", "tag"),
        ("/api/connections?status=%00", "status"),
        ("/api/connections/a%00b", "connection_id"),
        ("/api/connections/a%00b/health-checks", "connection_id"),
        ("/api/connections/a%00b/usage", "connection_id"),
        ("/api/pools/a%00b", "pool_id"),
        ("/api/pools/a%00b/stats", "pool_id"),
        ("/api/webhooks/a%00b", "webhook_id"),
        ("/api/usage?window=1%00d", "window"),
        ("/api/connections?offset=9223372036854775808", "offset"),
        ("/api/connections?offset=-1", "offset"),
        ("/api/connections?limit=-99999999999999999999999", "limit"),
        ("/api/connections?limit=99999999999999999999999", "limit"),
        ("/api/connections/x/health-checks?offset=9223372036854775808", "offset"),
        ("/api/webhooks/x/deliveries?offset=9223372036854775808", "offset"),
        ("/api/connections?" + "&".join(f"tag=t{i}" for i in range(2000)), "tag"),
        ("/api/connections?" + "&".join(f"tag=t{i}" for i in range(51)), "tag"),
        ("/api/connections?is_active=yes", "is_active"),
        ("/api/connections?use_in_livekit=on", "use_in_livekit"),
        ("/api/usage?window=999999d", "window"),
        ("/api/usage?window=32d", "window"),
        ("/api/usage?bucket=999999d", "bucket"),
    ],
)
def test_bad_query_or_path_is_a_4xx_naming_it(api: httpx.Client, url: str, field: str) -> None:
    error = _error(api.get(url), 422)
    assert error["field"] == field


def test_usage_windows_of_a_connection_and_a_pool(api: httpx.Client) -> None:
    created = api.post("/api/connections", json=VALID).json()
    pool = {"name": "P", "members": [{"connection_id": created["id"]}]}
    pool_id = api.post("/api/pools", json=pool).json()["id"]
    for url in (f"/api/connections/{created['id']}/usage", f"/api/pools/{pool_id}/stats"):
        assert _error(api.get(url, params={"window": "999999d"}), 422)["field"] == "window"
        assert api.get(url, params={"window": "31d"}).status_code == 200


@pytest.mark.parametrize("value", ["true", "True", "1", "false", "0"])
def test_query_bools_take_true_false_1_0(api: httpx.Client, value: str) -> None:
    api.post("/api/connections", json={**VALID, "is_active": True})
    listed = api.get("/api/connections", params={"is_active": value})
    assert listed.status_code == 200
    assert listed.json()["total"] == (1 if value.lower() in ("true", "1") else 0)


def _openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "HEAD"])
def test_gateway_chat_takes_only_post(api: httpx.Client, server: Server, method: str) -> None:
    response = api.request(method, "/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "OPTIONS, POST"
    if method != "HEAD":
        assert _openai_error(response, 405)["code"] == "method_not_allowed"


def test_gateway_models_takes_only_get(api: httpx.Client) -> None:
    response = api.post("/v1/models", json={})
    assert _openai_error(response, 405)["type"] == "invalid_request_error"
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert api.head("/v1/models").status_code == 200


@pytest.mark.parametrize(
    ("path", "allow"), [("/v1/models", "GET"), ("/v1/chat/completions", "POST")]
)
def test_gateway_answers_a_cors_preflight(api: httpx.Client, path: str, allow: str) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": allow,
        "Access-Control-Request-Headers": "content-type",
    }
    response = api.options(path, headers=preflight)
    assert response.status_code == 204
    assert allow in response.headers["allow"]
    assert "access-control-allow-origin" not in response.headers  # no cross-origin grant


def test_control_characters_in_credentials_are_refused_on_patch(
    api: httpx.Client, server: Server
) -> None:
    created = api.post("/api/connections", json=VALID).json()
    url = f"/api/connections/{created['id']}"
    for field, value in (
        ("api_key", "sk-\x00abcdefghijklmnop"),
        ("organization_id", "org\r\nX-Injected: 1"),
        ("api_version", "v\x01"),
        ("deployment", "d\x7f"),
        ("extra_headers", {"X-Ok": "v\x0b"}),
    ):
        error = _error(api.patch(url, json={field: value}), 422)
        assert error["field"].startswith(field)
    detail = api.get(url).json()
    assert detail["has_api_key"] is False and detail["extra_headers"] == {}


def test_the_readme_error_example_is_what_the_server_says(api: httpx.Client) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("Every error has one shape", 1)[1].split("```json\n", 1)[1]
    documented = json.loads(example.split("```", 1)[0])
    typo = {"name": "Typo", "connection_type": "local", "model": "llama3.2:3b"}
    assert api.post("/api/connections", json=typo).json() == documented
