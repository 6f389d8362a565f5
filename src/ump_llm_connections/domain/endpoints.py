"""Where a connection's requests go and what they carry: URLs, extra headers, and the masks
that stand for the secrets sent (keys, header values). Only pydantic rules here.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from ump_llm_connections.domain.input import InvalidField
from ump_llm_connections.domain.network import METADATA_WHY, metadata_host

__all__ = [
    "HOP_BY_HOP_HEADERS",
    "SECRET_HEADER_NAMES",
    "check_headers",
    "http_url",
    "mask_key",
    "mask_value",
]

# The adapters send the key in these from api_key: giving them again would be a second key.
SECRET_HEADER_NAMES = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"}
)
# Hop-by-hop and framing headers belong to the HTTP client, never to a connection's settings.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    }
)


_NOT_IN_URL = re.compile(r'[\s\x00-\x1f\x7f-\x9f<>"{}|\\^`]')


def http_url(value: str, field: str, *, credentials: str) -> SplitResult:
    """An http(s) URL with a host that is no cloud metadata endpoint (``network.py``), a valid
    port and no user:password (``credentials`` says where those belong instead)."""
    if _NOT_IN_URL.search(value):
        raise ValueError(f'{field} must not contain spaces, control characters or <>"{{}}|\\^`')
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field} must be an http:// or https:// URL with a host")
    try:
        refused = metadata_host(parts.hostname)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None
    if refused:
        raise ValueError(
            f"{field} must not point at a cloud metadata endpoint ({refused}): {METADATA_WHY}"
        )
    if parts.username or parts.password:
        raise ValueError(f"{field} must not carry credentials: {credentials}")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError(f"{field} has an invalid port") from None
    return parts


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    seen: set[str] = set()
    for name in headers:
        lowered = name.lower()
        if lowered in SECRET_HEADER_NAMES:
            raise InvalidField(
                name, f"header '{name}' is the key's header: put the key in api_key instead"
            )
        if lowered in HOP_BY_HOP_HEADERS or lowered.startswith("proxy-"):
            raise InvalidField(
                name, f"header '{name}' is set by the HTTP client, not by a connection"
            )
        if lowered in seen:
            raise InvalidField(name, f"header '{name}' is given twice (names ignore case)")
        seen.add(lowered)
    return headers


def mask_key(key: str) -> str:
    """``sk-proj-abcd…wxyz`` → ``sk-…wxyz``: the vendor prefix and the last four characters."""
    if len(key) < 12:
        return "…"
    head = ""
    for sep in ("-", "_"):
        idx = key.find(sep)
        if 0 < idx <= 4:
            head = key[: idx + 1]
            break
    return f"{head}…{key[-4:]}"


def mask_value(value: str) -> str:
    """A header value as the API shows it: ``…`` and, for a long one, its last four characters."""
    return f"…{value[-4:]}" if len(value) >= 12 else "…"
