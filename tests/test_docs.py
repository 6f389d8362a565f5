"""The API's own documentation: pages that load nothing from other hosts, and an OpenAPI document
that says what the server really answers."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Server

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
