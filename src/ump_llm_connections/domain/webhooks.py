"""Webhooks for connection events."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from ump_llm_connections.domain.endpoints import http_url
from ump_llm_connections.domain.events import EVENT_TYPES
from ump_llm_connections.domain.fields import Description, UtcDateTime
from ump_llm_connections.domain.input import Body, Flag, single_line
from ump_llm_connections.domain.secret import SecretRules, SecretText

__all__ = [
    "WEBHOOK_ALL_EVENTS",
    "EventName",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookDeliveryPage",
    "WebhookDeliveryRead",
    "WebhookEvents",
    "WebhookList",
    "WebhookRead",
    "WebhookSecret",
    "WebhookUrl",
]

WEBHOOK_ALL_EVENTS = "*"


def _check_webhook_url(value: str) -> str:
    value = value.strip()
    http_url(value, "url", credentials="use the secret to authenticate")
    return value


def _check_event_name(value: str) -> str:

    if value != WEBHOOK_ALL_EVENTS and value not in EVENT_TYPES:
        raise ValueError(f"unknown event; one of {', '.join(EVENT_TYPES)}, or '*' for all")
    return value


def _check_event_list(events: list[str]) -> list[str]:
    unique = list(dict.fromkeys(events))
    if WEBHOOK_ALL_EVENTS in unique and len(unique) > 1:
        raise ValueError("'*' already means every event: send it alone")
    return unique


WebhookUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_check_webhook_url)]
# The schema lists the names (and '*'), so clients can offer them; the validator says which.
EventName = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_check_event_name),
    Field(json_schema_extra={"enum": [*EVENT_TYPES, WEBHOOK_ALL_EVENTS]}),
]
WebhookEvents = Annotated[
    list[EventName], Field(min_length=1, max_length=50), AfterValidator(_check_event_list)
]
WebhookSecret = Annotated[SecretText, SecretRules(min_length=16, max_length=256, check=single_line)]


class WebhookCreate(Body):
    """Body of ``POST /api/webhooks``. Without a secret the server generates one."""

    url: WebhookUrl
    events: WebhookEvents
    secret: WebhookSecret | None = Field(
        default=None, description="Write-only; stored encrypted. Generated when omitted."
    )
    description: Description = ""
    is_active: Flag = True


class WebhookRead(BaseModel):
    """A webhook as the API shows it: the secret only as ``has_secret`` and a mask."""

    id: uuid.UUID
    url: str
    events: list[str]
    description: str
    is_active: bool
    owner: str | None = None
    has_secret: bool
    secret_mask: str
    created_at: UtcDateTime
    updated_at: UtcDateTime


class WebhookCreated(WebhookRead):
    """The creation response: the one time the secret is shown, to verify signatures with."""

    secret: str


class WebhookList(BaseModel):
    items: list[WebhookRead]
    total: int


class WebhookDeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    webhook_id: uuid.UUID
    event_id: str
    event_type: str
    attempt: int
    created_at: UtcDateTime
    status_code: int | None
    success: bool
    error: str | None
    duration_ms: float | None


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDeliveryRead]
    total: int
    limit: int
    offset: int
