"""Bad input: always a 4xx in the one error shape, naming the field; never a 500 or a stray row."""

from __future__ import annotations

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
        "extra_headers",
    ),
    ("header injection", {"extra_headers": {"X-A": "a\r\nX-B: b"}}, 422, "extra_headers.X-A"),
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
    error = _error(api.post("/api/connections", json=body), status)
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
