"""AWS spot instances that serve a model and register themselves as ``aws_spot`` connections:
the request and response bodies, the instance's lifecycle as pure rules, and its user data.

An instance's ``state`` (ours, not EC2's alone)::

    pending ──► starting ──► ready          launched; running, the model loading; it answers
       │           ▲  │        │            (only ``ready`` keeps its connection active)
       │           │  ▼        ▼
       └──────► stopping / stopped / shutting-down / terminated    (EC2 says so)
                   interrupted     a spot interruption warning: out of rotation at once
                   expired         no heartbeat and no sight of it for a lease: out of rotation

A running instance seen again (or heard from) after ``stopped`` or ``expired`` starts over at
``starting``; ``terminated`` and ``interrupted`` are final.
"""

from __future__ import annotations

import enum
import re
import shlex
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ump_llm_connections.domain.connections import ConnectionRead
from ump_llm_connections.domain.fields import ModelName, ShortText, UtcDateTime
from ump_llm_connections.domain.input import Body, Flag, Integer, InvalidField, Number, SingleLine
from ump_llm_connections.domain.names import Name

__all__ = [
    "EC2_INTERRUPTION",
    "EC2_STATE_CHANGE",
    "MANAGED_TAG",
    "ComputeEvent",
    "EventApplied",
    "Observed",
    "SpotInstanceCreate",
    "SpotInstanceList",
    "SpotInstanceRead",
    "SpotState",
    "endpoint_url",
    "state_after",
    "user_data",
]

MANAGED_TAG = "ump:managed"  # value "true": the reconciler's; it never touches other instances
SPOT_ID_TAG = "ump:spot-id"
MODEL_TAG = "ump:model"
PORT_TAG = "ump:port"
EC2_STATE_CHANGE = "EC2 Instance State-change Notification"
EC2_INTERRUPTION = "EC2 Spot Instance Interruption Warning"


class SpotState(enum.StrEnum):
    pending = "pending"
    starting = "starting"
    ready = "ready"
    interrupted = "interrupted"
    stopping = "stopping"
    stopped = "stopped"
    shutting_down = "shutting-down"
    terminated = "terminated"
    expired = "expired"

    @property
    def live(self) -> bool:
        """Whether the instance may still (come to) serve: the reconciler watches it."""
        return self in LIVE


LIVE = frozenset({SpotState.pending, SpotState.starting, SpotState.ready, SpotState.expired})
DOWN = {
    "stopping": SpotState.stopping,
    "stopped": SpotState.stopped,
    "shutting-down": SpotState.shutting_down,
    "terminated": SpotState.terminated,
}
FINAL = frozenset({SpotState.terminated, SpotState.interrupted})


def state_after(current: SpotState, ec2_state: str) -> SpotState:
    """Our state once EC2 says the instance is ``ec2_state`` (pending, running, stopping, …)."""
    if current in FINAL:
        return current if ec2_state != "terminated" else SpotState.terminated
    if ec2_state in DOWN:
        return DOWN[ec2_state]
    if ec2_state == "running":
        return SpotState.ready if current is SpotState.ready else SpotState.starting
    if ec2_state == "pending":
        return SpotState.pending if current is SpotState.pending else current
    return current


def endpoint_url(
    template: str, *, public_ip: str | None, private_ip: str | None, port: int
) -> str | None:
    """The instance's OpenAI-compatible base URL from ``UMP_SPOT_ENDPOINT_TEMPLATE``; None while
    the address it names is not known yet."""
    if ("{public_ip}" in template and not public_ip) or (
        "{private_ip}" in template and not private_ip
    ):
        return None
    return template.format(public_ip=public_ip or "", private_ip=private_ip or "", port=port)


def user_data(
    *,
    spot_id: uuid.UUID,
    model: str,
    port: int,
    heartbeat_url: str | None,
    token: str | None,
    every_s: int,
) -> str:
    """The cloud-init shell script: vLLM's OpenAI server for ``model`` on ``port``, and a
    heartbeat to ``heartbeat_url`` with the instance's own token every ``every_s`` seconds."""
    lines = [
        "#!/bin/bash",
        f"# ump-llm-connections spot instance {spot_id}",
        "set -u",
        f"MODEL={shlex.quote(model)}",
        f"PORT={port}",
        "# vLLM's OpenAI-compatible server (preinstalled on GPU AMIs with vLLM, else from pip)",
        "command -v vllm >/dev/null 2>&1 || python3 -m pip install --quiet vllm",
        'nohup vllm serve "$MODEL" --host 0.0.0.0 --port "$PORT" >/var/log/ump-vllm.log 2>&1 &',
    ]
    if heartbeat_url and token:
        lines += [
            f"HEARTBEAT_URL={shlex.quote(heartbeat_url)}",
            f"HEARTBEAT_TOKEN={shlex.quote(token)}",
            "(",
            "  while true; do",
            '    curl -fsS -m 10 -X POST -H "Authorization: Bearer $HEARTBEAT_TOKEN" \\',
            "      -H 'Content-Type: application/json' -d '{}' \"$HEARTBEAT_URL\" >/dev/null 2>&1",
            f"    sleep {every_s}",
            "  done",
            ") &",
        ]
    else:
        lines.append(
            "# no heartbeat: UMP_PUBLIC_URL is not set on the server; the reconciler renews the"
            " lease while it sees this instance running"
        )
    return "\n".join(lines) + "\n"


_TAG_KEY = re.compile(r"[\w .:/=+\-@]{1,128}")
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128), SingleLine]
TagValue = Annotated[str, StringConstraints(max_length=256), SingleLine]
Region = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
]
AwsId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
]
InstanceType = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9-]+\.[a-z0-9-]+$")
]


class SpotInstanceCreate(Body):
    """``POST /api/compute/spot-instances``."""

    name: Name
    region: Region = Field(description="e.g. us-east-1")
    instance_type: InstanceType = Field(description="a GPU type, e.g. g5.xlarge")
    image_id: AwsId | None = Field(default=None, description="an AMI id (or launch_template)")
    launch_template: AwsId | None = Field(
        default=None, description="a launch template's name or lt- id"
    )
    model_name: ModelName
    port: Annotated[Integer, Field(ge=1, le=65535)] = 8000
    max_price: Annotated[Number, Field(gt=0, le=1000)] | None = Field(
        default=None, description="USD per hour; default: up to the on-demand price"
    )
    subnet_id: AwsId | None = None
    security_group_ids: Annotated[list[AwsId], Field(max_length=16)] = Field(default_factory=list)
    key_name: ShortText | None = None
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=40)] = Field(default_factory=dict)
    use_in_livekit: Flag = False
    use_in_mcp: Flag = False
    use_in_automation: Flag = False

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.image_id is None) == (self.launch_template is None):
            raise InvalidField("image_id", "give image_id (an AMI) or launch_template, one of them")
        for key in self.tags:
            if key.lower().startswith(("ump:", "aws:")) or not _TAG_KEY.fullmatch(key):
                raise InvalidField(
                    "tags", f"tag key {key[:40]!r} is reserved or not a valid AWS tag key"
                )
        return self


class SpotInstanceRead(BaseModel):
    """An instance with its state, price, cost so far and the connection that serves it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    aws_instance_id: str
    region: str
    instance_type: str
    image_id: str | None
    launch_template: str | None
    model_name: str
    port: int
    max_price: float | None
    spot_price: float | None = Field(description="USD per hour, recorded at launch")
    state: SpotState
    state_reason: str | None
    public_ip: str | None
    private_ip: str | None
    launch_time: UtcDateTime | None
    ended_at: UtcDateTime | None
    lease_expires_at: UtcDateTime | None
    last_heartbeat_at: UtcDateTime | None
    adopted: bool
    connection_id: uuid.UUID | None
    owner: str | None
    team: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    hours: float = 0.0
    cost_so_far: float | None = None
    tokens_served: int = 0
    cost_per_million_tokens: float | None = None
    connection: ConnectionRead | None = None

    def with_cost(self, now: datetime, tokens: int) -> Self:
        """Hours run (to ``ended_at`` or now), cost at the recorded price, and per token."""
        start = self.launch_time or self.created_at
        end = self.ended_at or now
        self.hours = round(max(0.0, (end - start).total_seconds()) / 3600, 6)
        self.tokens_served = tokens
        if self.spot_price is not None:
            self.cost_so_far = round(self.hours * self.spot_price, 6)
            if tokens:
                self.cost_per_million_tokens = round(self.cost_so_far / tokens * 1e6, 6)
        return self


class SpotInstanceList(BaseModel):
    items: list[SpotInstanceRead]
    total: int


@dataclass(frozen=True, slots=True)
class Observed:
    """What EC2 says of one instance."""

    instance_id: str
    region: str
    state: str
    instance_type: str = ""
    image_id: str | None = None
    public_ip: str | None = None
    private_ip: str | None = None
    launch_time: datetime | None = None
    reason: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class ComputeEvent(BaseModel):
    """An EventBridge event, as EventBridge posts it (only what is read here is checked)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    detail_type: str = Field(alias="detail-type", max_length=200)
    region: Region | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.detail_type not in (EC2_STATE_CHANGE, EC2_INTERRUPTION):
            raise InvalidField(
                "detail-type", f"must be {EC2_STATE_CHANGE!r} or {EC2_INTERRUPTION!r}"
            )
        instance = self.detail.get("instance-id")
        if not isinstance(instance, str) or not instance.strip():
            raise InvalidField("detail", "detail.instance-id is required")
        if self.detail_type == EC2_STATE_CHANGE and not isinstance(self.detail.get("state"), str):
            raise InvalidField("detail", "detail.state is required")
        return self

    @property
    def instance_id(self) -> str:
        return str(self.detail["instance-id"]).strip()


class EventApplied(BaseModel):
    applied: bool = Field(description="false: no instance of ours has that id")
    instance: SpotInstanceRead | None = None
