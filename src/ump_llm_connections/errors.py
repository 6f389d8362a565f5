"""The one error type the registry raises; the API renders it as
``{"error": {"type", "message", "field"}}`` with ``status``.

    UmpError
    ├── InvalidInput      400/422  a request the server will not act on
    ├── NotFound          404      no such connection
    ├── Conflict          409      a name already taken
    └── ConfigurationError          the server cannot start (not an HTTP error)
"""

from __future__ import annotations


class UmpError(Exception):
    status = 400
    type = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"type": self.type, "message": self.message, "field": self.field}}


class InvalidInput(UmpError):
    status = 422
    type = "validation_error"


class NotFound(UmpError):
    status = 404
    type = "not_found"


class Conflict(UmpError):
    status = 409
    type = "conflict"


class ConfigurationError(UmpError):
    """The server's own configuration is wrong: it refuses to start and says how to fix it."""

    type = "configuration_error"
