"""The API's own documentation: pages that load nothing from other hosts, and an OpenAPI document
that says what the server really answers."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Server, free_port

TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_same_origin_assets(server: Server, page: str) -> None:
    with server.client() as client:
        response = client.get(page)
        assert response.status_code == 200
        html = response.text
        urls = re.findall(r"""(?:href|src|spec-url)=["']([^"']+)["']|url: ?'([^']+)'""", html)
        found = {a or b for a, b in urls}
        assert "/openapi.json" in found
        assert any(url.endswith(".js") for url in found)
        for url in found:
            assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url}"
            asset = client.get(url)
            assert asset.status_code == 200, url
            kind = asset.headers["content-type"].split(";")[0]
            assert kind == TYPES[url[url.rindex(".") :]], (url, kind)
        assert "https://" not in html and "http://" not in html
        if page == "/docs":
            assert '"validatorUrl": null' in html  # Swagger UI would fetch a badge from its site


def test_openapi_documents_metrics_and_upstream_errors(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    models = doc["paths"]["/api/connections/{connection_id}/models"]["get"]["responses"]
    for status in ("502", "504", "4XX"):
        assert models[status]["content"]["application/json"]["schema"] == error_ref
    create = doc["paths"]["/api/connections"]["post"]["responses"]
    assert create["409"]["content"]["application/json"]["schema"] == error_ref
    assert "422" not in create or create["422"]["content"]["application/json"]["schema"] == (
        error_ref
    )
    error = doc["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"type", "message", "field"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # not our shape

    for path, allowed in (
        ("/api/connections", "GET, POST"),
        ("/api/connections/summary", "GET"),
        ("/api/connections/x", "DELETE, GET, PATCH"),
    ):
        refused = api.request("PUT", path, json={})
        assert (refused.status_code, refused.headers["allow"]) == (405, allowed), path

    closed = free_port()  # nothing listens here: the upstream is unreachable
    created = api.post(
        "/api/connections",
        json={
            "name": "Nowhere",
            "connection_type": "remote",
            "base_url": f"http://127.0.0.1:{closed}/v1",
            "model_name": "m",
            "max_retries": 0,
        },
    )
    assert created.status_code == 201, created.text
    answer = api.get(f"/api/connections/{created.json()['id']}/models")
    assert answer.status_code == 502
    assert answer.json()["error"]["type"] == "unreachable"
