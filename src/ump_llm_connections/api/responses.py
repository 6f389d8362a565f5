"""The error answers, as the OpenAPI document shows them: every one is
``{"error": {"type", "message", "field"}}`` (see ``errors.error_body``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    type: str = Field(description="A stable kind: validation_error, not_found, conflict, …")
    message: str = Field(description="What went wrong and how to fix it, for people")
    field: str | None = Field(description="The input field at fault, when there is one")


class ErrorResponse(BaseModel):
    error: ErrorDetail


Responses = dict[int | str, dict[str, Any]]

_MEANING = {
    "4XX": "Refused input: malformed, invalid, too large, not found or not allowed",
    409: "The name is taken",
    502: "The upstream failed (auth, not_found, rate_limited, unreachable, bad_response, "
    "server_error)",
    503: "Not ready: the database does not answer",
    504: "The upstream did not answer in time",
}


def errors(*statuses: int | str) -> Responses:
    """OpenAPI ``responses=`` entries for these statuses, all in the error shape."""
    return {s: {"model": ErrorResponse, "description": _MEANING[s]} for s in statuses}


REST_ERRORS = errors("4XX")  # every REST route
UPSTREAM_ERRORS = errors(502, 504)  # routes that call the connection's upstream
