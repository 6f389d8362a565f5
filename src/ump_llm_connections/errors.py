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

    def to_dict(self) -> ErrorBody:
        return error_body(self.type, self.message, self.field)


ErrorBody = dict[str, dict[str, str | None]]


def error_body(kind: str, message: str, field: str | None = None) -> ErrorBody:
    """The one error shape: ``{"error": {"type", "message", "field"}}``."""
    return {"error": {"type": kind, "message": message, "field": field}}


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
