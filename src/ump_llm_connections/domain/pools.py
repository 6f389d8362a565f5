"""Pools (connection groups) and the presets applied as pools."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from ump_llm_connections.domain.access import TeamName
from ump_llm_connections.domain.connections import ConnectionRead
from ump_llm_connections.domain.enums import ConnectionType
from ump_llm_connections.domain.fields import (
    ApiKey,
    AwsAccessKeyId,
    AwsRegion,
    Description,
    Priority,
    UtcDateTime,
    Weight,
)
from ump_llm_connections.domain.input import Body, Flag, InvalidField, SingleLine
from ump_llm_connections.domain.names import Name
from ump_llm_connections.domain.usage import UsageStats

__all__ = [
    "Members",
    "PoolCreate",
    "PoolList",
    "PoolMember",
    "PoolMemberRead",
    "PoolMemberStats",
    "PoolRead",
    "PoolStats",
    "PoolStrategy",
    "PoolUpdate",
    "PresetApplied",
    "PresetApply",
    "PresetConnectionInfo",
    "PresetInfo",
    "PresetKey",
    "PresetSkipped",
]


class PoolStrategy(enum.StrEnum):
    priority = "priority"  # in order of member priority, lowest first: failover
    weighted = "weighted"  # random, in proportion to weight: load balancing
    ab = "ab"  # sticky by the caller's key, split by weight: A/B tests
    least_latency = "least_latency"  # the fastest member lately first


class PoolMember(Body):
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


class PoolCreate(Body):
    name: Name
    description: Description = ""
    strategy: PoolStrategy = PoolStrategy.priority
    members: Members
    team: TeamName | None = Field(
        default=None, description="The team that may use it (a member's: its own, the default)."
    )


class PoolUpdate(Body):
    """PATCH body: the fields sent change; ``members`` replaces the whole list."""

    name: Name | None = None
    description: Description | None = None
    strategy: PoolStrategy | None = None
    members: Members | None = None
    team: TeamName | None = None


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
    owner: str | None = None
    team: str | None = None
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
    needs_aws_region: bool = Field(
        default=False,
        description="An AWS (bedrock) connection: applying needs aws_region; its key "
        "(api_keys.<key>, the secret access key) with aws_access_key_id, or neither to use "
        "the server's AWS credentials.",
    )


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


PresetKey = Annotated[str, StringConstraints(max_length=64), SingleLine]


class PresetApply(Body):
    """Body of ``POST /api/presets/{name}/apply``."""

    api_keys: Annotated[dict[PresetKey, ApiKey], Field(max_length=50)] = Field(
        default_factory=dict, description="One key per connection that needs one, by its key."
    )
    prefix: Annotated[str, StringConstraints(max_length=50), SingleLine] = Field(
        default="", description="Put before every name, to apply a preset more than once."
    )
    pool_name: Name | None = None
    aws_region: AwsRegion | None = Field(
        default=None, description="The region of the preset's AWS (bedrock) connections."
    )
    aws_access_key_id: AwsAccessKeyId | None = Field(
        default=None,
        description="With the secret access key in api_keys: the AWS connections' own keys.",
    )
    use_in_livekit: Flag = False
    use_in_mcp: Flag = False
    use_in_automation: Flag = False

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
