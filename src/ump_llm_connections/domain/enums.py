"""The closed sets of values the rest of the code speaks in: connection types, wire formats,
statuses, probe modes, call sources and the kinds of upstream failure."""

from __future__ import annotations

import enum

__all__ = [
    "ApiFormat",
    "ConnectionStatus",
    "ConnectionType",
    "ErrorKind",
    "ProbeMode",
    "Source",
]


class ConnectionType(enum.StrEnum):
    local = "local"
    remote = "remote"
    aws_spot = "aws_spot"
    openai = "openai"
    anthropic = "anthropic"
    google = "google"
    groq = "groq"
    together = "together"
    azure = "azure"
    bedrock = "bedrock"


class ProbeMode(enum.StrEnum):
    cheap = "cheap"
    generate = "generate"


class ApiFormat(enum.StrEnum):
    openai = "openai"
    anthropic = "anthropic"
    google = "google"
    ollama = "ollama"
    bedrock = "bedrock"


class ConnectionStatus(enum.StrEnum):
    active = "active"
    inactive = "inactive"
    error = "error"
    testing = "testing"
    unknown = "unknown"


class Source(enum.StrEnum):
    """Who makes a gateway call (the ``X-UMP-Source`` header). A connection serves ``livekit``,
    ``mcp`` and ``automation`` calls only with its ``use_in_<source>`` flag; ``api`` (the
    default) is served by any active connection."""

    livekit = "livekit"
    mcp = "mcp"
    automation = "automation"
    api = "api"

    @property
    def flag(self) -> str | None:
        """The connection's field that enables it for this source (``api`` needs none)."""
        return None if self is Source.api else f"use_in_{self.value}"


class ErrorKind(enum.StrEnum):
    """How an upstream call failed (the adapters classify; health and routing act on it)."""

    auth = "auth"
    not_found = "not_found"
    rate_limited = "rate_limited"
    timeout = "timeout"
    unreachable = "unreachable"
    bad_response = "bad_response"
    server_error = "server_error"
    bad_request = "bad_request"
