"""Where a connection's model is (``Target``), one HTTP request to it (``HttpCall``), and the
process's one HTTP client session that every upstream call goes through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ump_llm_connections.domain.secret import SecretText
from ump_llm_connections.providers.egress import guarded_socket

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to reach one connection's model. The key and the header values are
    sealed: a ``Target`` in a log line or a traceback's locals shows only their masks."""

    api_format: str
    base_url: str
    model: str
    api_key: SecretText | None = None
    timeout: float = 60.0
    max_retries: int = 2
    organization_id: str | None = None
    api_version: str | None = None
    deployment: str | None = None
    extra_headers: Mapping[str, SecretText] = field(default_factory=dict)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    aws_region: str | None = None  # bedrock: the region requests are signed for
    aws_access_key_id: str | None = None  # bedrock: with api_key as the secret; None: the chain

    def secrets(self) -> list[SecretText]:
        """What must never appear in a message: the key and every extra header's value."""
        found = [value for value in self.extra_headers.values() if value]
        if self.api_key:
            found.append(self.api_key)
        return found

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc or self.base_url

    def root(self, default_path: str) -> str:
        """The base URL, with ``default_path`` (e.g. ``/v1``) when it has no path at all."""
        base = self.base_url.rstrip("/")
        return base + default_path if urlsplit(base).path in ("", "/") else base


@dataclass(frozen=True, slots=True)
class HttpCall:
    """One request to send; a header that carries a credential is a ``SecretText`` until
    ``wire_headers`` hands it to the HTTP client."""

    method: str
    url: str
    headers: Mapping[str, str | SecretText]
    body: Any = None


def create_http_session() -> aiohttp.ClientSession:
    """The one pooled client session of a process, shared by every adapter, the health probes
    and the webhooks. Its sockets refuse cloud metadata addresses (``egress.py``); no call it
    makes follows a redirect (``allow_redirects=False`` everywhere)."""
    connector = aiohttp.TCPConnector(
        limit=0, ttl_dns_cache=300, enable_cleanup_closed=True, socket_factory=guarded_socket
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
    )
