"""How an upstream call fails: one exception type with a kind.

    ProviderError(kind=...)
    ├── auth           401/403: the key is wrong, missing or lacks access
    ├── not_found      404: no such model (or a wrong base_url)
    ├── rate_limited   429: slow down; ``retry_after`` says for how long
    ├── timeout        no answer within the connection's timeout
    ├── unreachable    refused, DNS or TLS failure: nothing answered
    ├── bad_response   an answer we cannot read: invalid JSON, a stream cut mid-way, content
    │                  or a tool call no adapter can translate
    ├── server_error   5xx
    └── bad_request    400/422: the upstream refused the request as sent

``rate_limited``, ``timeout``, ``unreachable`` and ``server_error`` are retryable. The kinds are
the domain's ``ErrorKind`` (health rules act on them); re-exported here for the adapters.
"""

from __future__ import annotations

from ump_llm_connections.domain import ErrorKind

__all__ = ["RETRYABLE", "ErrorKind", "ProviderError"]


RETRYABLE = frozenset(
    {ErrorKind.rate_limited, ErrorKind.timeout, ErrorKind.unreachable, ErrorKind.server_error}
)


class ProviderError(Exception):
    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE
