"""Testing and health: test requests and results, health checks, health summaries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from ump_llm_connections.domain.connections import (
    ConnectionCreate,
    ConnectionRead,
    ConnectionUpdate,
)
from ump_llm_connections.domain.enums import ConnectionStatus
from ump_llm_connections.domain.fields import ModelName, UtcDateTime
from ump_llm_connections.domain.input import Body, Integer, TextBlock
from ump_llm_connections.domain.names import Name

__all__ = [
    "DEFAULT_TEST_PROMPT",
    "ConnectionDetail",
    "DraftConnection",
    "EditModelsRequest",
    "EditTestRequest",
    "HealthCheckPage",
    "HealthCheckRead",
    "HealthSummary",
    "HealthWindow",
    "ModelList",
    "TestRequest",
    "TestResult",
    "TokenCounts",
    "UnsavedModelsRequest",
    "UnsavedTestRequest",
]

DEFAULT_TEST_PROMPT = "Hello, how are you?"


class TestRequest(Body):
    """Body of ``POST /api/connections/{id}/test`` (all optional)."""

    prompt: Annotated[str, StringConstraints(min_length=1, max_length=4000), TextBlock] = (
        DEFAULT_TEST_PROMPT
    )
    max_tokens: Annotated[Integer, Field(ge=1, le=4096)] = 50


class EditTestRequest(TestRequest):
    """Body of ``POST /api/connections/{id}/test``: with ``changes`` (a PATCH body), the
    connection is tested as that edit would leave it, nothing saved or recorded (the Edit
    dialog's test). The stored key goes along only while the host stays the same."""

    changes: ConnectionUpdate | None = None


class EditModelsRequest(Body):
    """Body of ``POST /api/connections/{id}/models``: the models the upstream would offer after
    ``changes`` (a PATCH body), asked with the stored key while the host stays the same."""

    changes: ConnectionUpdate


class UnsavedTestRequest(TestRequest):
    """Body of ``POST /api/connections/test``: a configuration not saved yet, as the Add dialog
    has it, plus the optional prompt and max_tokens of the test."""

    connection: ConnectionCreate


class DraftConnection(ConnectionCreate):
    """A configuration being filled in: listing its upstream's models needs no name and no model
    (the model is what the list helps to pick)."""

    name: Name = "draft"
    model_name: ModelName = "draft"


class UnsavedModelsRequest(Body):
    """Body of ``POST /api/connections/models``: a configuration not saved yet, whose upstream
    is asked for its models (the Add dialog's model picker)."""

    connection: DraftConnection


class TokenCounts(BaseModel):
    prompt: int | None
    completion: int | None


class TestResult(BaseModel):
    """What a test found. ``error_kind`` and ``error`` are set when it failed."""

    success: bool
    status: ConnectionStatus | None  # the connection's status afterwards (None: not saved)
    latency_ms: float
    ttft_ms: float | None
    tokens: TokenCounts
    response_preview: str | None
    error_kind: str | None = None
    error: str | None = None
    http_status: int | None = None
    tested_at: datetime


class HealthCheckRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    connection_id: uuid.UUID
    created_at: UtcDateTime
    kind: str
    success: bool
    latency_ms: float | None
    ttft_ms: float | None
    http_status: int | None
    error_kind: str | None
    error: str | None
    response_preview: str | None


class HealthCheckPage(BaseModel):
    items: list[HealthCheckRead]
    total: int
    limit: int
    offset: int


class ModelList(BaseModel):
    models: list[str]


class HealthWindow(BaseModel):
    checks: int
    success_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class HealthSummary(BaseModel):
    """A connection's health: its state and its checks over the last hour and day."""

    connection_id: uuid.UUID
    status: ConnectionStatus
    is_active: bool
    deactivated_by_health: bool
    consecutive_failures: int
    last_error: str | None
    last_tested_at: datetime | None
    last_hour: HealthWindow
    last_day: HealthWindow


class ConnectionDetail(ConnectionRead):
    """One connection, as ``GET /api/connections/{id}`` shows it: with its health."""

    health: HealthSummary
