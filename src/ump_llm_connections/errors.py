"""Every exception the project raises on purpose, drawn once, and where each is rendered.

    Exception
    ├── UmpError              here: the registry's errors, rendered by the REST API as
    │   │                     {"error": {"type", "message", "field"}} with its ``status``
    │   ├── InvalidInput        400/422  a request the server will not act on
    │   ├── Unauthorized        401      no token, or a bad, expired or revoked one
    │   ├── Forbidden           403      a token whose role, team or sources do not allow it
    │   ├── NotFound            404      no such connection (or not one this token may see)
    │   ├── Conflict            409      a name already taken
    │   └── ConfigurationError           the server cannot start (not an HTTP error)
    ├── ProviderError         providers/base.py: an upstream call failed, with an ``ErrorKind``
    │                         (auth, not_found, rate_limited, timeout, unreachable, bad_response,
    │                         server_error, bad_request); 502, or 504 for a timeout
    ├── GatewayError          gateway/core.py: the gateway refuses a call, in OpenAI's terms
    │                         (status, type, code, param): an unknown model, an inactive or
    │                         disabled connection, a budget, a rate limit, an empty pool
    ├── WireError             gateway/wire.py: a Chat Completions body the gateway cannot read;
    │                         400 invalid_request, naming the ``param``
    └── LimiterUnavailable    gateway/limits.py: Redis, behind the rate limits, cannot be
                              reached; the gateway admits the call and logs it

Two never leave their module: ``BodyTooLarge`` (providers/reading.py) becomes a
``ProviderError(bad_response)``, and ``InvalidField`` (domain/input.py, a ``ValueError``) a
pydantic validation error, then ``InvalidInput``.
"""

from __future__ import annotations


class UmpError(Exception):
    status = 400
    type = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> ErrorBody:
        return error_body(self.type, self.message, self.field)


ErrorBody = dict[str, dict[str, str | None]]


def error_body(kind: str, message: str, field: str | None = None) -> ErrorBody:
    """The one error shape: ``{"error": {"type", "message", "field"}}``."""
    return {"error": {"type": kind, "message": message, "field": field}}


class InvalidInput(UmpError):
    status = 422
    type = "validation_error"


class Unauthorized(UmpError):
    status = 401
    type = "unauthorized"


class Forbidden(UmpError):
    status = 403
    type = "forbidden"


class NotFound(UmpError):
    status = 404
    type = "not_found"


class Conflict(UmpError):
    status = 409
    type = "conflict"


class ConfigurationError(UmpError):
    """The server's own configuration is wrong: it refuses to start and says how to fix it."""

    type = "configuration_error"
