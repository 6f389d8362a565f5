"""The request guards of a server without tokens: Host (DNS rebinding) and Origin (CSRF)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server

CONNECTION = {"name": "Guarded", "connection_type": "local", "model_name": "llama3.2:3b"}


def _refused(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == kind


@pytest.mark.parametrize(
    "host",
    [
        "[::1]evil.com",
        "[::1]evil.com:8002",
        "[::1]:8002evil.com",
        "[::1]:80:80",
        "127.0.0.1:8002@evil.com",
        "127.0.0.1:8002:9",
        "127.0.0.1 evil.com",
        "localhost/evil.com",
        "localhost:",
        "localhost:port",
        "[::1",
        "::1",
        "",
    ],
)
def test_a_malformed_host_is_refused(api: httpx.Client, host: str) -> None:
    _refused(api.get("/api/connections", headers={"Host": host}), 400, "invalid_host")


@pytest.mark.parametrize("host", ["[::1]", "[::1]:8002", "LOCALHOST:8002", "127.0.0.1"])
def test_loopback_hosts_are_served(api: httpx.Client, host: str) -> None:
    assert api.get("/api/connections", headers={"Host": host}).status_code == 200


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://127.0.0.1:{port}", None),  # served over http: another scheme, another origin
        ("ftp://localhost:{port}", "localhost:{port}"),
        ("ws://127.0.0.1:{port}", None),
        ("http://127.0.0.1:{other}", None),
        ("http://127.0.0.1", None),
        ("http://127.0.0.1:{port}.evil.com", None),
        ("http://evil.com:{port}", None),
        ("http://127.0.0.1:{port}/path", None),
        ("null", None),
    ],
)
def test_a_write_from_another_origin_is_refused(
    api: httpx.Client, server: Server, origin: str, host: str | None
) -> None:
    port = _port(server)
    headers = {"Origin": origin.format(port=port, other=port + 1)}
    if host is not None:
        headers["Host"] = host.format(port=port)
    _refused(api.post("/api/connections", json=CONNECTION, headers=headers), 403, "cross_origin")
    assert api.get("/api/connections").json()["total"] == 0


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:{port}", None),
        ("HTTP://LOCALHOST:{port}", None),  # a loopback name for another
        ("http://[::1]:{port}", None),
        ("http://localhost:{port}", "localhost:{port}"),
        ("http://localhost", "localhost:80"),  # default port on both sides
    ],
)
def test_a_write_from_the_same_origin_is_served(
    api: httpx.Client, server: Server, origin: str, host: str | None
) -> None:
    port = _port(server)
    headers: dict[str, Any] = {"Origin": origin.format(port=port)}
    if host is not None:
        headers["Host"] = host.format(port=port)
    created = api.post("/api/connections", json=CONNECTION, headers=headers)
    assert created.status_code == 201, created.text
