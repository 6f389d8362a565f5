"""The SSRF guard: cloud metadata endpoints refused in every spelling when a URL is saved or
tested, again at connect time after DNS resolution, never reached through a redirect; and the
upstream allowlist.

No test sends a packet anywhere but 127.0.0.1: the in-process ones run under an audit hook that
fails any other connect before it happens (a broken guard fails its test, it does not reach the
metadata endpoint), and the server-side one uses ``fe80::1`` without a zone, which the kernel
refuses to connect to.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import ValidationError

from tests.conftest import Server
from tests.upstreams.base import FakeUpstream
from tests.upstreams.openai import FakeOpenAI
from ump_llm_connections.config import Settings
from ump_llm_connections.domain import check_upstream_allowed, metadata_host, upstream_allowed
from ump_llm_connections.errors import InvalidInput
from ump_llm_connections.providers import adapter_for
from ump_llm_connections.providers.egress import BlockedAddress, guarded_socket
from ump_llm_connections.providers.errors import ErrorKind, ProviderError
from ump_llm_connections.providers.target import Target, create_http_session

METADATA_URLS = [
    "http://169.254.169.254",
    "http://169.254.169.254/latest/meta-data",
    "http://169.254.169.254:80/v1",
    "http://2852039166",
    "http://0xa9fea9fe",
    "http://0XA9FEA9FE",
    "http://0251.0376.0251.0376",
    "http://169.254.43518",
    "http://169.16689662",
    "http://0xa9.0376.43518",
    "http://169.254.169.254.",
    "http://[::ffff:169.254.169.254]",
    "http://[::ffff:a9fe:a9fe]",
    "http://[0:0:0:0:0:ffff:a9fe:a9fe]",
    "http://[::a9fe:a9fe]",
    "http://[64:ff9b::a9fe:a9fe]",
    "http://[64:ff9b::169.254.169.254]",
    "http://[2002:a9fe:a9fe::]",
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]",  # Teredo
    "http://[fd00:ec2::254]",
    "http://[FD00:EC2:0::254]",
    "http://[fd00:ec2::23]",
    "http://[fd20:ce::254]",
    "http://[fe80::1]",
    "http://[fe80::a9fe:a9fe%25eth0]",
    "http://169.254.170.2/v2/credentials",  # AWS ECS task credentials
    "http://100.100.100.200",
    "http://168.63.129.16",
    "http://192.0.0.192",
    "http://metadata.google.internal",
    "http://METADATA.Google.Internal.",
    "http://metadata",
    "http://metadata.goog",
    "http://instance-data",
    "http://%31%36%39.254.169.254",
    "http://%6d%65%74%61%64%61%74%61.google.internal",
    "http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",
    "http://169\u3002254\u3002169\u3002254",  # ideographic full stops
    "https://169.254.169.254:443",
    "http://x@169.254.169.254",
    "http://user:pass@metadata.google.internal",
]
NOT_IPV4 = ["http://1.2.3.999", "http://169.254.169.09", "http://1.2.3.4.5"]
ALLOWED_URLS = [
    "http://localhost:11434",
    "http://127.0.0.1:8000/v1",
    "http://[::1]:8080",
    "http://10.0.0.5:8000/v1",
    "http://192.168.1.20:11434",
    "http://172.16.0.9",
    "http://100.64.0.1",
    "http://gpu-box.internal:8000",
    "https://api.openai.com/v1",
    "http://169.254.169.254.example.com",  # a name: resolved (and checked) at request time
]


# -- the rule itself --------------------------------------------------------------------------


@pytest.mark.parametrize("url", METADATA_URLS)
def test_every_spelling_is_a_metadata_endpoint(url: str) -> None:
    host = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
    assert metadata_host(host)


@pytest.mark.parametrize("url", ALLOWED_URLS)
def test_local_private_and_public_hosts_are_not(url: str) -> None:
    host = httpx.URL(url).host
    assert metadata_host(host) is None


# -- refused when saved or tested, naming the field -----------------------------------------


def _refused(response: httpx.Response, field: str, *, why: str = "metadata") -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert error["field"] == field, error
    assert why in error["message"], error


def _local(**fields: Any) -> dict[str, Any]:
    body = {"name": "Guarded", "connection_type": "remote", "model_name": "m", "is_active": False}
    return {**body, **fields}


def test_connections_refuse_metadata_base_urls(api: httpx.Client) -> None:
    created = api.post("/api/connections", json=_local(base_url="http://127.0.0.1:9/v1"))
    assert created.status_code == 201, created.text
    patch_url = f"/api/connections/{created.json()['id']}"
    for url in METADATA_URLS:
        _refused(api.post("/api/connections", json=_local(base_url=url)), "base_url")
        _refused(api.patch(patch_url, json={"base_url": url}), "base_url")
        body = {"connection": _local(base_url=url)}
        _refused(api.post("/api/connections/test", json=body), "connection.base_url")
    for url in NOT_IPV4:
        _refused(api.post("/api/connections", json=_local(base_url=url)), "base_url", why="IPv4")
    message = api.post("/api/connections", json=_local(base_url=METADATA_URLS[0])).text
    assert "cloud credentials" in message
    assert api.get(patch_url).json()["base_url"] == "http://127.0.0.1:9/v1"
    assert api.get("/api/connections").json()["total"] == 1


def test_webhooks_refuse_metadata_urls(api: httpx.Client) -> None:
    for url in METADATA_URLS:
        body = {"url": url, "events": ["*"], "is_active": False}
        _refused(api.post("/api/webhooks", json=body), "url")
    assert api.get("/api/webhooks").json()["total"] == 0


def test_local_and_private_hosts_stay_allowed(api: httpx.Client) -> None:
    """Saved only: inactive, and nothing is tested, so none of them is called."""
    for index, url in enumerate(ALLOWED_URLS):
        response = api.post("/api/connections", json=_local(name=f"Allowed {index}", base_url=url))
        assert response.status_code == 201, (url, response.text)
        hook = api.post("/api/webhooks", json={"url": url, "events": ["*"], "is_active": False})
        assert hook.status_code == 201, (url, hook.text)
        assert api.delete(f"/api/webhooks/{hook.json()['id']}").status_code == 204


# -- redirects are never followed -----------------------------------------------------------


class Redirector(FakeUpstream):
    """Answers every request with a 302 to ``location``."""

    def __init__(self, location: str) -> None:
        super().__init__(api_key=None)
        self.location = location

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.redirect)

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        raise web.HTTPFound(self.location)

    def error_response(self, status: int, message: str) -> web.Response:
        return self.json({"error": message}, status)

    def authorized(self, request: web.Request) -> bool:
        return True


@pytest.fixture
def followed() -> Iterator[FakeOpenAI]:
    """Where the 127.0.0.1 redirects lead: it must never be asked anything."""
    with FakeOpenAI(api_key=None) as fake:
        yield fake


@pytest.mark.parametrize("to", ["metadata", "loopback"])
def test_a_redirect_is_not_followed(api: httpx.Client, followed: FakeOpenAI, to: str) -> None:
    location = (
        "http://169.254.169.254/latest/meta-data/"
        if to == "metadata"
        else f"{followed.url}/v1/chat/completions"
    )
    with Redirector(location) as upstream:
        fields = _local(base_url=f"{upstream.url}/v1", is_active=True, max_retries=0)
        connection = api.post("/api/connections", json=fields).json()
        result = api.post(f"/api/connections/{connection['id']}/test").json()
        assert result["success"] is False
        assert "redirects are not followed" in result["error"]
        models = api.get(f"/api/connections/{connection['id']}/models")
        assert models.status_code == 502
        assert "redirects are not followed" in models.json()["error"]["message"]
        chat = api.post(
            "/v1/chat/completions",
            json={"model": "Guarded", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 502, chat.text
        assert "redirects are not followed" in chat.json()["error"]["message"]
        assert len(upstream.requests) == 3
    assert followed.requests == []


def test_a_webhook_redirect_is_not_followed(api: httpx.Client, followed: FakeOpenAI) -> None:
    with Redirector(f"{followed.url}/v1/chat/completions") as receiver:
        hook = api.post("/api/webhooks", json={"url": receiver.url, "events": ["*"]}).json()
        api.post("/api/connections", json=_local(base_url="http://127.0.0.1:9"))
        deliveries = f"/api/webhooks/{hook['id']}/deliveries"
        first = _wait(lambda: api.get(deliveries).json()["items"])
        assert first[-1]["status_code"] == 302 and first[-1]["error"] == "HTTP 302"
        assert api.delete(f"/api/webhooks/{hook['id']}").status_code == 204
    assert followed.requests == []


def _wait(read: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := read()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


# -- at connect time: after DNS, whatever the URL said ---------------------------------------

_GUARDING = False


def _only_loopback(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: while ``_GUARDING``, a connect to anything but loopback fails before it
    happens (so a broken guard fails its test instead of reaching the address)."""
    if _GUARDING and event == "socket.connect" and isinstance(args[1], tuple):
        host = str(args[1][0])
        if host not in ("127.0.0.1", "::1"):
            raise RuntimeError(f"test tried to connect to {host}")


sys.addaudithook(_only_loopback)


@pytest.fixture
def loopback_only() -> Iterator[None]:
    global _GUARDING
    _GUARDING = True
    try:
        yield
    finally:
        _GUARDING = False


class HostsResolver(AbstractResolver):
    """DNS answers this test controls: a name and the addresses it resolves to right now."""

    def __init__(self, hosts: dict[str, list[str]]) -> None:
        self.hosts = hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.hosts:
            raise OSError(f"{host} does not resolve")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.hosts[host]
        ]

    async def close(self) -> None:
        return None


@pytest.mark.usefixtures("loopback_only")
async def test_a_name_resolving_to_a_metadata_address_is_refused_at_connect_time() -> None:
    with FakeOpenAI(api_key=None) as fake:
        resolver = HostsResolver({"llm.example.test": ["127.0.0.1"]})
        connector = aiohttp.TCPConnector(resolver=resolver, socket_factory=guarded_socket)
        async with aiohttp.ClientSession(connector=connector) as http:
            url = f"http://llm.example.test:{fake.port}/v1/models"
            async with http.get(url) as response:  # it passed the check when it was saved
                assert response.status == 200
            for addresses in (["169.254.169.254"], ["fd00:ec2::254"], ["::ffff:a9fe:a9fe"]):
                resolver.hosts["rebound.example.test"] = addresses  # the record changed since
                with pytest.raises(aiohttp.ClientConnectorError) as caught:
                    await http.get(f"http://rebound.example.test:{fake.port}/v1/models")
                assert isinstance(caught.value.os_error, BlockedAddress)
                assert "metadata" in str(caught.value)
            # Metadata first, then a good address: the good one is used, the other never.
            resolver.hosts["mixed.example.test"] = ["169.254.169.254", "127.0.0.1"]
            async with http.get(f"http://mixed.example.test:{fake.port}/v1/models") as response:
                assert response.status == 200
        assert len(fake.requests) == 2


@pytest.mark.usefixtures("loopback_only")
@pytest.mark.parametrize(
    "base_url",
    ["http://[::ffff:169.254.169.254]:9", "http://0xa9.0xfe.0xa9.0xfe:9", "http://0xa9fea9fe:9"],
)
async def test_the_shared_session_refuses_metadata_addresses(base_url: str) -> None:
    """Rows saved before the check (no validation here): libc's own parsing of the host, then
    the guard, and a clear ``unreachable`` error that is not retried into a 500."""
    http = create_http_session()
    try:
        target = Target(api_format="openai", base_url=base_url, model="m", max_retries=0)
        with pytest.raises(ProviderError) as caught:
            await adapter_for(target, http).list_models()
    finally:
        await http.close()
    assert caught.value.kind is ErrorKind.unreachable
    assert "169.254.169.254 is the cloud instance metadata endpoint" in caught.value.message


def test_a_stored_metadata_url_fails_cleanly_on_the_server(
    api: httpx.Client, server: Server
) -> None:
    """A row written before the guard (here: behind the API's back) is refused when used."""
    connection = api.post("/api/connections", json=_local(base_url="http://127.0.0.1:9")).json()
    server.db.execute("UPDATE llm_connections SET base_url = 'http://[fe80::1]:9'")
    result = api.post(f"/api/connections/{connection['id']}/test").json()
    assert (result["success"], result["error_kind"]) == (False, "unreachable")
    assert "fe80::1 is a link-local address" in result["error"]
    assert "metadata" in result["error"]


# -- UMP_UPSTREAM_ALLOWLIST -----------------------------------------------------------------

ALLOWLIST = ["api.openai.com", "*.internal.example", "10.0.0.0/8", "192.168.1.20", "[::1]"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.openai.com/v1", True),
        ("https://API.OpenAI.com./v1", True),
        ("https://api.openai.com.evil.test/v1", False),
        ("https://openai.com/v1", False),
        ("http://gpu.internal.example:8000", True),
        ("http://a.b.internal.example", True),
        ("http://internal.example", False),
        ("http://evilinternal.example", False),
        ("http://10.1.2.3:8000/v1", True),
        ("http://012.1.2.3", True),  # 10.1.2.3 in octal
        ("http://11.0.0.1", False),
        ("http://192.168.1.20:11434", True),
        ("http://192.168.1.21", False),
        ("http://[::1]:8080", True),
        ("http://[::2]:8080", False),
        ("http://localhost:11434", False),
        ("http://1.2.3.999", False),
    ],
)
def test_upstream_allowed(url: str, allowed: bool) -> None:
    assert upstream_allowed(url, ALLOWLIST) is allowed


def test_an_empty_allowlist_allows_every_host() -> None:
    assert upstream_allowed("http://anything.test", [])
    check_upstream_allowed("http://anything.test", [], field="base_url")


def test_a_refusal_is_a_422_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_upstream_allowed("http://other.test", ALLOWLIST, field="url")
    assert caught.value.field == "url"
    assert "UMP_UPSTREAM_ALLOWLIST" in caught.value.message


def test_the_setting_is_read_and_checked() -> None:
    settings = Settings(upstream_allowlist=" api.openai.com, *.example.com,10.0.0.0/8, [::1] ")
    assert settings.upstream_allowlist == ["api.openai.com", "*.example.com", "10.0.0.0/8", "[::1]"]
    for bad in ("*", "http://x.test", "a b", "*."):
        with pytest.raises(ValidationError, match="upstream_allowlist"):
            Settings(upstream_allowlist=bad)
