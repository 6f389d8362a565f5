"""Connections: types, per-type defaults and the API schemas (their field types: ``fields.py``).

Only pydantic here: no database, no HTTP.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ump_llm_connections.domain.enums import ApiFormat, ConnectionStatus, ConnectionType, ProbeMode
from ump_llm_connections.domain.fields import (
    ApiKey,
    AwsAccessKeyId,
    AwsRegion,
    BaseUrl,
    Cost,
    Description,
    Headers,
    Limit,
    MaxTokens,
    ModelName,
    Priority,
    Retries,
    ShortText,
    Tags,
    Temperature,
    Timeout,
    UtcDateTime,
    Weight,
)
from ump_llm_connections.domain.input import (
    Body,
    Flag,
    Integer,
    InvalidField,
    Number,
    invalid_input,
)
from ump_llm_connections.domain.names import Name

__all__ = [
    "BEDROCK_URL",
    "DEFAULT_BASE_URLS",
    "OLLAMA_PORT",
    "SORT_FIELDS",
    "TYPE_API_FORMAT",
    "ConnectionCreate",
    "ConnectionFields",
    "ConnectionFilters",
    "ConnectionPage",
    "ConnectionRead",
    "ConnectionUpdate",
    "Summary",
    "default_api_format",
    "default_base_url",
    "patched",
]


# The usual endpoint and wire format of each type (the guide's examples).
DEFAULT_BASE_URLS: dict[ConnectionType, str] = {
    ConnectionType.local: "http://localhost:11434",
    ConnectionType.openai: "https://api.openai.com/v1",
    ConnectionType.anthropic: "https://api.anthropic.com/v1",
    ConnectionType.google: "https://generativelanguage.googleapis.com/v1",
    ConnectionType.groq: "https://api.groq.com/openai/v1",
    ConnectionType.together: "https://api.together.xyz/v1",
}
# Bedrock's runtime endpoint depends on the connection's region.
BEDROCK_URL = "https://bedrock-runtime.{region}.amazonaws.com"
TYPE_API_FORMAT: dict[ConnectionType, ApiFormat] = {
    ConnectionType.anthropic: ApiFormat.anthropic,
    ConnectionType.google: ApiFormat.google,
    ConnectionType.bedrock: ApiFormat.bedrock,
}
OLLAMA_PORT = 11434

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


def default_base_url(connection_type: ConnectionType, aws_region: str | None) -> str | None:
    """The endpoint a type uses when ``base_url`` is left out (None: the type needs one)."""
    if connection_type is ConnectionType.bedrock:
        return BEDROCK_URL.format(region=aws_region) if aws_region else None
    return DEFAULT_BASE_URLS.get(connection_type)


class ConnectionFields(Body):
    """The writable fields of a connection, all optional (what PATCH takes)."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    name: Name | None = None
    description: Description | None = None
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
    use_in_livekit: Flag | None = None
    use_in_mcp: Flag | None = None
    use_in_automation: Flag | None = None
    is_active: Flag | None = None
    tags: Tags | None = None
    priority: Priority | None = None
    weight: Weight | None = None
    rpm_limit: Limit | None = None
    tpm_limit: Limit | None = None
    input_cost_per_million: Cost | None = None
    output_cost_per_million: Cost | None = None
    cache_read_cost_per_million: Cost | None = None  # unset: priced as input
    cache_write_cost_per_million: Cost | None = None  # unset: priced as input
    monthly_budget: Annotated[Number, Field(gt=0, le=10_000_000)] | None = Field(
        default=None, description="Spend per calendar month (UTC) above which it is skipped."
    )
    health_interval_s: Annotated[Integer, Field(ge=10, le=86_400)] | None = Field(
        default=None, description="Seconds between health probes (default UMP_HEALTH_INTERVAL_S)."
    )
    probe_mode: ProbeMode | None = Field(
        default=None,
        description="cheap: list the models, no tokens spent (default); generate: a tiny prompt.",
    )
    auto_reactivate: Flag | None = Field(
        default=None, description="Come back by itself once healthy after the monitor disabled it."
    )
    aws_instance_id: ShortText | None = None
    aws_region: AwsRegion | None = Field(
        default=None, description="The AWS region (bedrock: required; aws_spot: the instance's)."
    )
    aws_access_key_id: AwsAccessKeyId | None = Field(
        default=None,
        description="bedrock: the access key id of keys of the connection's own, whose secret "
        "access key is api_key; without both the server's AWS credential chain is used.",
    )
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
    description: Description = ""
    extra_headers: Headers = Field(default_factory=dict)
    timeout: Timeout = 60.0
    max_retries: Retries = 2
    use_in_livekit: Flag = False
    use_in_mcp: Flag = False
    use_in_automation: Flag = False
    is_active: Flag = True
    tags: Tags = Field(default_factory=list)
    priority: Priority = 0
    weight: Weight = 1
    probe_mode: ProbeMode = ProbeMode.cheap
    auto_reactivate: Flag = False

    @model_validator(mode="after")
    def _apply_type_rules(self, info: ValidationInfo) -> Self:
        ctype = self.connection_type
        if ctype is ConnectionType.bedrock:
            # A PATCH validates the merged row without the key: the registry says if one is kept.
            stored_key = bool((info.context or {}).get("stored_key"))
            _check_bedrock(self, has_key=self.api_key is not None or stored_key)
        if self.base_url is None:
            default = default_base_url(ctype, self.aws_region)
            if default is None:
                raise InvalidField(
                    "base_url", f"base_url is required for {ctype.value} connections"
                )
            self.base_url = default
        if self.api_format is None:
            self.api_format = default_api_format(ctype, self.base_url)
        if ctype is ConnectionType.azure:
            for field in ("deployment", "api_version"):
                if not getattr(self, field):
                    raise InvalidField(
                        field, f"{field} is required for azure connections (see Azure's portal)"
                    )
        return self


def patched(current: dict[str, Any], patch: ConnectionUpdate, *, has_key: bool) -> ConnectionCreate:
    """A connection's fields (``current``, header values opened) with ``patch`` applied, checked
    by the same rules as a new connection (``has_key``: whether it holds a stored key). Values
    that were only the defaults of the old type (or region) follow the new one."""
    sent = patch.model_fields_set - {"api_key"}
    merged = {**current, **{f: getattr(patch, f) for f in sent}}
    old_type = ConnectionType(current["connection_type"])
    new_type = ConnectionType(merged["connection_type"])
    was_default_url = current["base_url"] == default_base_url(old_type, current["aws_region"])
    moved = new_type != old_type or merged["aws_region"] != current["aws_region"]
    if "base_url" not in sent and moved and was_default_url:
        merged["base_url"] = None
    if "api_format" not in sent and current["api_format"] == default_api_format(
        old_type, current["base_url"]
    ):
        merged["api_format"] = None
    stored_key = patch.api_key is not None if "api_key" in patch.model_fields_set else has_key
    try:
        return ConnectionCreate.model_validate(merged, context={"stored_key": stored_key})
    except ValidationError as exc:
        raise invalid_input(exc) from None


def _check_bedrock(data: ConnectionCreate, *, has_key: bool) -> None:
    """A region, and keys of its own in pairs: the access key id with its secret (api_key)."""
    if not data.aws_region:
        raise InvalidField(
            "aws_region", "aws_region is required for bedrock connections (e.g. us-east-1)"
        )
    if data.aws_access_key_id and not has_key:
        raise InvalidField(
            "api_key",
            "api_key is required with aws_access_key_id: it holds the AWS secret access key "
            "(or leave both out to use the server's AWS credentials)",
        )
    if has_key and not data.aws_access_key_id:
        raise InvalidField(
            "aws_access_key_id",
            "aws_access_key_id is required with api_key (the AWS secret access key) for bedrock "
            "connections, or leave both out to use the server's AWS credentials",
        )


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
    cache_read_cost_per_million: float | None
    cache_write_cost_per_million: float | None
    monthly_budget: float | None
    health_interval_s: int | None
    probe_mode: ProbeMode
    auto_reactivate: bool
    deactivated_by_health: bool
    aws_instance_id: str | None
    aws_region: str | None
    aws_access_key_id: str | None
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
