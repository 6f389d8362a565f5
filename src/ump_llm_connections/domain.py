"""The connection domain: enums, per-type defaults and the API schemas.

Only pydantic here: no database, no HTTP.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ump_llm_connections.errors import InvalidInput


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


class ProbeMode(enum.StrEnum):
    cheap = "cheap"
    generate = "generate"


class ApiFormat(enum.StrEnum):
    openai = "openai"
    anthropic = "anthropic"
    google = "google"
    ollama = "ollama"


class ConnectionStatus(enum.StrEnum):
    active = "active"
    inactive = "inactive"
    error = "error"
    testing = "testing"
    unknown = "unknown"


# The usual endpoint and wire format of each type (the guide's examples).
DEFAULT_BASE_URLS: dict[ConnectionType, str] = {
    ConnectionType.local: "http://localhost:11434",
    ConnectionType.openai: "https://api.openai.com/v1",
    ConnectionType.anthropic: "https://api.anthropic.com/v1",
    ConnectionType.google: "https://generativelanguage.googleapis.com/v1",
    ConnectionType.groq: "https://api.groq.com/openai/v1",
    ConnectionType.together: "https://api.together.xyz/v1",
}
TYPE_API_FORMAT: dict[ConnectionType, ApiFormat] = {
    ConnectionType.anthropic: ApiFormat.anthropic,
    ConnectionType.google: ApiFormat.google,
}
OLLAMA_PORT = 11434

# Credentials belong in api_key (encrypted), never in plain-text headers.
SECRET_HEADER_NAMES = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"}
)

SORT_FIELDS = (
    "name",
    "created_at",
    "updated_at",
    "priority",
    "status",
    "connection_type",
    "last_used_at",
    "last_tested_at",
)


def default_api_format(connection_type: ConnectionType, base_url: str | None) -> ApiFormat:
    """Pick the wire format a type usually speaks; a local server is Ollama on its usual port."""
    if connection_type in TYPE_API_FORMAT:
        return TYPE_API_FORMAT[connection_type]
    if connection_type is ConnectionType.local:
        port = urlsplit(base_url).port if base_url else OLLAMA_PORT
        return ApiFormat.ollama if port == OLLAMA_PORT else ApiFormat.openai
    return ApiFormat.openai


def _check_base_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("base_url must not carry credentials: put the key in api_key")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query string or fragment")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError("base_url has an invalid port") from None
    return value.rstrip("/")


def _check_tags(tags: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        seen.setdefault(tag, None)
    return list(seen)


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name in headers:
        if name.lower() in SECRET_HEADER_NAMES:
            raise ValueError(
                f"header '{name}' carries a credential: put the key in api_key, which is encrypted"
            )
    return headers


def _as_utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they are stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
HeaderName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
]
HeaderValue = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\r\n]*$")]
BaseUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_check_base_url)]
ApiKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)]
Tags = Annotated[list[Tag], Field(max_length=50), AfterValidator(_check_tags)]
Headers = Annotated[
    dict[HeaderName, HeaderValue], Field(max_length=50), AfterValidator(_check_headers)
]
Timeout = Annotated[float, Field(gt=0, le=3600)]
Retries = Annotated[int, Field(ge=0, le=10)]
Temperature = Annotated[float, Field(ge=0, le=2)]
MaxTokens = Annotated[int, Field(ge=1, le=2_000_000)]
Priority = Annotated[int, Field(ge=-1000, le=1000)]
Weight = Annotated[int, Field(ge=0, le=10_000)]
Limit = Annotated[int, Field(ge=1, le=100_000_000)]
Cost = Annotated[float, Field(ge=0, le=100_000)]


class InvalidField(ValueError):
    """A model-level rule broken by one named field (pydantic reports it under that field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ConnectionFields(BaseModel):
    """The writable fields of a connection, all optional (what PATCH takes)."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    connection_type: ConnectionType | None = None
    api_format: ApiFormat | None = None
    base_url: BaseUrl | None = None
    model_name: ModelName | None = None
    api_key: ApiKey | None = Field(default=None, description="Write-only; stored encrypted.")
    organization_id: ShortText | None = None
    api_version: ShortText | None = None
    deployment: ShortText | None = None
    extra_headers: Headers | None = None
    timeout: Timeout | None = None
    max_retries: Retries | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    use_in_livekit: bool | None = None
    use_in_mcp: bool | None = None
    use_in_automation: bool | None = None
    is_active: bool | None = None
    tags: Tags | None = None
    priority: Priority | None = None
    weight: Weight | None = None
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None
    input_cost_per_million: Cost | None = None
    output_cost_per_million: Cost | None = None
    monthly_budget: Annotated[float, Field(gt=0, le=10_000_000)] | None = Field(
        default=None, description="Spend per calendar month (UTC) above which it is skipped."
    )
    health_interval_s: Annotated[int, Field(ge=10, le=86_400)] | None = Field(
        default=None, description="Seconds between health probes (default UMP_HEALTH_INTERVAL_S)."
    )
    probe_mode: ProbeMode | None = Field(
        default=None,
        description="cheap: list the models, no tokens spent (default); generate: a tiny prompt.",
    )
    auto_reactivate: bool | None = Field(
        default=None, description="Come back by itself once healthy after the monitor disabled it."
    )
    aws_instance_id: ShortText | None = None
    aws_region: ShortText | None = None
    owner: ShortText | None = None
    team: ShortText | None = None


class ConnectionUpdate(ConnectionFields):
    """PATCH body: only the fields sent change; ``"api_key": null`` clears the key."""

    @field_validator(
        "name",
        "connection_type",
        "model_name",
        "timeout",
        "max_retries",
        "use_in_livekit",
        "use_in_mcp",
        "use_in_automation",
        "is_active",
        "tags",
        "priority",
        "weight",
        "extra_headers",
        "probe_mode",
        "auto_reactivate",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value


class ConnectionCreate(ConnectionFields):
    """POST body, with the guide's defaults filled in and the per-type rules checked."""

    name: Name
    connection_type: ConnectionType
    model_name: ModelName
    description: str = ""
    extra_headers: Headers = Field(default_factory=dict)
    timeout: Timeout = 60.0
    max_retries: Retries = 2
    use_in_livekit: bool = False
    use_in_mcp: bool = False
    use_in_automation: bool = False
    is_active: bool = True
    tags: Tags = Field(default_factory=list)
    priority: Priority = 0
    weight: Weight = 1
    probe_mode: ProbeMode = ProbeMode.cheap
    auto_reactivate: bool = False

    @model_validator(mode="after")
    def _apply_type_rules(self) -> Self:
        ctype = self.connection_type
        if self.base_url is None:
            if ctype not in DEFAULT_BASE_URLS:
                raise InvalidField(
                    "base_url", f"base_url is required for {ctype.value} connections"
                )
            self.base_url = DEFAULT_BASE_URLS[ctype]
        if self.api_format is None:
            self.api_format = default_api_format(ctype, self.base_url)
        if ctype is ConnectionType.azure:
            for field in ("deployment", "api_version"):
                if not getattr(self, field):
                    raise InvalidField(
                        field, f"{field} is required for azure connections (see Azure's portal)"
                    )
        return self


class ConnectionRead(BaseModel):
    """What the API returns: every field but the key, which shows only as a mask."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    connection_type: ConnectionType
    api_format: ApiFormat
    base_url: str
    model_name: str
    has_api_key: bool
    api_key_mask: str | None
    organization_id: str | None
    api_version: str | None
    deployment: str | None
    extra_headers: dict[str, str]
    timeout: float
    max_retries: int
    temperature: float | None
    max_tokens: int | None
    use_in_livekit: bool
    use_in_mcp: bool
    use_in_automation: bool
    is_active: bool
    status: ConnectionStatus
    last_error: str | None
    consecutive_failures: int
    tags: list[str]
    priority: int
    weight: int
    rpm_limit: int | None
    tpm_limit: int | None
    input_cost_per_million: float | None
    output_cost_per_million: float | None
    monthly_budget: float | None
    health_interval_s: int | None
    probe_mode: ProbeMode
    auto_reactivate: bool
    deactivated_by_health: bool
    aws_instance_id: str | None
    aws_region: str | None
    owner: str | None
    team: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    last_used_at: UtcDateTime | None
    last_tested_at: UtcDateTime | None


class ConnectionPage(BaseModel):
    items: list[ConnectionRead]
    total: int
    limit: int
    offset: int


class ConnectionFilters(BaseModel):
    """The list filters, shared by the API, the CLI and the SDK."""

    connection_type: ConnectionType | None = None
    use_in_livekit: bool | None = None
    use_in_mcp: bool | None = None
    use_in_automation: bool | None = None
    is_active: bool | None = None
    status: ConnectionStatus | None = None
    tags: list[str] = Field(default_factory=list)
    q: str | None = None
    owner: str | None = None


class Summary(BaseModel):
    """The UI's summary cards. *Ready* means active, flagged for that use and not in error."""

    total: int
    active: int
    livekit_ready: int
    mcp_ready: int
    automation_ready: int
    in_error: int


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


def invalid_input(exc: ValidationError | Sequence[Mapping[str, Any]]) -> InvalidInput:
    """One readable error naming the first bad field, from pydantic's list of errors.

    Input values are never echoed: a rejected value may be a secret.
    """
    errors = exc.errors() if isinstance(exc, ValidationError) else list(exc)
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, InvalidField):  # a rule of the whole model, naming its field
        loc.append(cause.field)
    field = ".".join(loc) or None
    kind = first.get("type", "")
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = f"unknown field '{field}'"
    elif kind == "missing":
        message = f"{field} is required"
    elif field and not message.startswith(field):
        message = f"{field}: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return InvalidInput(message, field=field)


DEFAULT_TEST_PROMPT = "Hello, how are you?"


class TestRequest(BaseModel):
    """Body of ``POST /api/connections/{id}/test`` (all optional)."""

    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[str, StringConstraints(min_length=1, max_length=4000)] = DEFAULT_TEST_PROMPT
    max_tokens: Annotated[int, Field(ge=1, le=4096)] = 50


class UnsavedTestRequest(TestRequest):
    """Body of ``POST /api/connections/test``: a configuration not saved yet, as the Add dialog
    has it, plus the optional prompt and max_tokens of the test."""

    connection: ConnectionCreate


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


class UsageStats(BaseModel):
    """Totals over a set of gateway calls. Rates and percentiles are null when there were none."""

    requests: int
    successes: int
    failures: int
    success_rate: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    cost: float | None  # null when no call had a price


class UsageBucket(UsageStats):
    start: datetime


class ConnectionUsage(UsageStats):
    connection_id: uuid.UUID
    name: str | None  # null for a connection deleted since


class PoolUsage(UsageStats):
    pool_id: uuid.UUID
    name: str | None  # null for a pool deleted since


class UsageReport(BaseModel):
    window_start: datetime
    window_end: datetime
    bucket_seconds: int
    totals: UsageStats
    buckets: list[UsageBucket]
    connections: list[ConnectionUsage] | None = None  # only in the report across connections
    pools: list[PoolUsage] | None = None  # likewise: calls made through pools


class PoolStrategy(enum.StrEnum):
    priority = "priority"  # in order of member priority, lowest first: failover
    weighted = "weighted"  # random, in proportion to weight: load balancing
    ab = "ab"  # sticky by the caller's key, split by weight: A/B tests
    least_latency = "least_latency"  # the fastest member lately first


class PoolMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection_id: uuid.UUID
    priority: Priority = 0
    weight: Weight = 1


def _distinct_members(members: list[PoolMember]) -> list[PoolMember]:
    seen: set[uuid.UUID] = set()
    for index, member in enumerate(members):
        if member.connection_id in seen:
            raise InvalidField(f"{index}.connection_id", "a connection can be in a pool only once")
        seen.add(member.connection_id)
    return members


Members = Annotated[
    list[PoolMember], Field(min_length=1, max_length=50), AfterValidator(_distinct_members)
]


class PoolCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    strategy: PoolStrategy = PoolStrategy.priority
    members: Members


class PoolUpdate(BaseModel):
    """PATCH body: the fields sent change; ``members`` replaces the whole list."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    strategy: PoolStrategy | None = None
    members: Members | None = None


class PoolMemberRead(BaseModel):
    connection_id: uuid.UUID
    connection_name: str
    priority: int
    weight: int


class PoolRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    strategy: PoolStrategy
    members: list[PoolMemberRead]
    created_at: UtcDateTime
    updated_at: UtcDateTime


class PoolList(BaseModel):
    items: list[PoolRead]
    total: int


class PoolMemberStats(UsageStats):
    connection_id: uuid.UUID
    name: str | None


class PoolStats(BaseModel):
    """How the members of a pool compare over a window (an A/B test's results)."""

    pool_id: uuid.UUID
    name: str
    strategy: PoolStrategy
    window_start: datetime
    window_end: datetime
    totals: UsageStats
    members: list[PoolMemberStats]


class PresetConnectionInfo(BaseModel):
    key: str  # the name to give its API key under, in api_keys
    name: str
    connection_type: ConnectionType
    model_name: str
    base_url: str | None
    needs_api_key: bool
    priority: int


class PresetSkipped(BaseModel):
    name: str
    reason: str


class PresetInfo(BaseModel):
    slug: str
    name: str
    description: str
    strategy: PoolStrategy
    connections: list[PresetConnectionInfo]
    skipped: list[PresetSkipped]


class PresetApply(BaseModel):
    """Body of ``POST /api/presets/{name}/apply``."""

    model_config = ConfigDict(extra="forbid")

    api_keys: dict[Annotated[str, StringConstraints(max_length=64)], ApiKey] = Field(
        default_factory=dict, description="One key per connection that needs one, by its key."
    )
    prefix: Annotated[str, StringConstraints(max_length=50)] = Field(
        default="", description="Put before every name, to apply a preset more than once."
    )
    pool_name: Name | None = None
    use_in_livekit: bool = False
    use_in_mcp: bool = False
    use_in_automation: bool = False

    def flags(self) -> dict[str, bool]:
        return {
            "use_in_livekit": self.use_in_livekit,
            "use_in_mcp": self.use_in_mcp,
            "use_in_automation": self.use_in_automation,
        }


class PresetApplied(BaseModel):
    pool: PoolRead
    connections: list[ConnectionRead]
    skipped: list[PresetSkipped]


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


WEBHOOK_ALL_EVENTS = "*"


def _check_webhook_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("url must not carry credentials: use the secret to authenticate")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError("url has an invalid port") from None
    return value


def _check_event_name(value: str) -> str:
    from ump_llm_connections.events import EVENT_TYPES  # the events module knows the names

    if value != WEBHOOK_ALL_EVENTS and value not in EVENT_TYPES:
        raise ValueError(f"unknown event; one of {', '.join(EVENT_TYPES)}, or '*' for all")
    return value


def _check_event_list(events: list[str]) -> list[str]:
    unique = list(dict.fromkeys(events))
    if WEBHOOK_ALL_EVENTS in unique and len(unique) > 1:
        raise ValueError("'*' already means every event: send it alone")
    return unique


WebhookUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_check_webhook_url)]
EventName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_check_event_name)]
WebhookEvents = Annotated[
    list[EventName], Field(min_length=1, max_length=50), AfterValidator(_check_event_list)
]
WebhookSecret = Annotated[str, StringConstraints(min_length=16, max_length=256)]


class WebhookCreate(BaseModel):
    """Body of ``POST /api/webhooks``. Without a secret the server generates one."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    events: WebhookEvents
    secret: WebhookSecret | None = Field(
        default=None, description="Write-only; stored encrypted. Generated when omitted."
    )
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    is_active: bool = True


class WebhookRead(BaseModel):
    """A webhook as the API shows it: the secret only as ``has_secret`` and a mask."""

    id: uuid.UUID
    url: str
    events: list[str]
    description: str
    is_active: bool
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


class ConnectionDetail(ConnectionRead):
    """One connection, as ``GET /api/connections/{id}`` shows it: with its health."""

    health: HealthSummary
