"""The guide's three tables and the ones added since. Timestamps are UTC; ids are UUIDs."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ump_llm_connections.clock import utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ConnectionRow(Base):
    __tablename__ = "llm_connections"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    connection_type: Mapped[str] = mapped_column(String(32))
    api_format: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str] = mapped_column(String(2000))
    model_name: Mapped[str] = mapped_column(String(300))
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    api_key_mask: Mapped[str | None] = mapped_column(String(32))
    organization_id: Mapped[str | None] = mapped_column(String(200))
    api_version: Mapped[str | None] = mapped_column(String(200))
    deployment: Mapped[str | None] = mapped_column(String(200))
    extra_headers: Mapped[dict[str, str]] = mapped_column(JsonDoc, default=dict)
    timeout: Mapped[float] = mapped_column(Float, default=60.0)
    max_retries: Mapped[int] = mapped_column(Integer, default=2)
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    use_in_livekit: Mapped[bool] = mapped_column(Boolean, default=False)
    use_in_mcp: Mapped[bool] = mapped_column(Boolean, default=False)
    use_in_automation: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    tags: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    input_cost_per_million: Mapped[float | None] = mapped_column(Float)
    output_cost_per_million: Mapped[float | None] = mapped_column(Float)
    cache_read_cost_per_million: Mapped[float | None] = mapped_column(Float)
    cache_write_cost_per_million: Mapped[float | None] = mapped_column(Float)
    monthly_budget: Mapped[float | None] = mapped_column(Float)
    health_interval_s: Mapped[int | None] = mapped_column(Integer)
    probe_mode: Mapped[str] = mapped_column(String(16), default="cheap")
    auto_reactivate: Mapped[bool] = mapped_column(Boolean, default=False)
    deactivated_by_health: Mapped[bool] = mapped_column(Boolean, default=False)
    aws_instance_id: Mapped[str | None] = mapped_column(String(200))
    aws_region: Mapped[str | None] = mapped_column(String(200))
    aws_access_key_id: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_tested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def has_api_key(self) -> bool:
        return self.api_key_encrypted is not None

    __table_args__ = (
        Index("ix_llm_connections_name", "name"),
        Index("ix_llm_connections_type_active", "connection_type", "is_active", "name"),
        Index("ix_llm_connections_status", "status", "name"),
        Index("ix_llm_connections_livekit", "use_in_livekit", "is_active", "name"),
        Index("ix_llm_connections_mcp", "use_in_mcp", "is_active", "name"),
        Index("ix_llm_connections_automation", "use_in_automation", "is_active", "name"),
        Index("ix_llm_connections_created", "created_at"),
        Index("ix_llm_connections_updated", "updated_at"),  # the gateway's change check
        Index("ix_llm_connections_team", "team"),
        Index("ix_llm_connections_aws_instance", "aws_instance_id"),
        Index(
            "ix_llm_connections_tags",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )


class ConnectionTagRow(Base):
    """One row per connection and tag, with copies of the columns the list filters on.

    Written only by the database: triggers on ``llm_connections`` (migration 0008) insert,
    replace and update these rows whoever writes the connection, and a connection's rows go with
    it. The registry reads it to count and page tag filters from an index (store.connections).
    """

    __tablename__ = "llm_connection_tags"

    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("llm_connections.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200))
    connection_type: Mapped[str] = mapped_column(String(32))
    use_in_livekit: Mapped[bool] = mapped_column(Boolean)
    use_in_mcp: Mapped[bool] = mapped_column(Boolean)
    use_in_automation: Mapped[bool] = mapped_column(Boolean)
    is_active: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        *(
            Index(
                f"ix_llm_connection_tags_{name}", "tag", *flag, "name", "connection_id", "is_active"
            )
            for name, flag in (
                ("livekit", ["use_in_livekit"]),
                ("mcp", ["use_in_mcp"]),
                ("automation", ["use_in_automation"]),
                ("name", []),
            )
        ),
        Index("ix_llm_connection_tags_connection", "connection_id"),
        {"sqlite_with_rowid": False, "info": {"maintained_by": "triggers (migration 0008)"}},
    )


class UsageRow(Base):
    __tablename__ = "llm_connection_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("llm_connections.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    source: Mapped[str] = mapped_column(String(16))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_read_tokens: Mapped[int | None] = mapped_column(Integer)  # of prompt_tokens
    cache_write_tokens: Mapped[int | None] = mapped_column(Integer)  # of prompt_tokens
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)  # of completion_tokens
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    success: Mapped[bool] = mapped_column(Boolean)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    cost: Mapped[float | None] = mapped_column(Float)
    pool_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("llm_pools.id", ondelete="SET NULL")
    )
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # a replayed row is stored once
    token_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # who called (no FK: kept for good)

    __table_args__ = (
        Index("ix_llm_connection_usage_conn_time", "connection_id", "created_at"),
        Index("ix_llm_connection_usage_time", "created_at"),
        Index("ix_llm_connection_usage_pool_time", "pool_id", "created_at"),
        Index("ix_llm_connection_usage_token_time", "token_id", "created_at"),
        Index("uq_llm_connection_usage_event_id", "event_id", unique=True),
    )


class PoolRow(Base):
    """A connection group: the router picks among its members by the pool's strategy."""

    __tablename__ = "llm_pools"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    strategy: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NameRow(Base):
    """The one namespace of the names the gateway resolves: a connection's or a pool's.

    ``name_key`` (``domain.name_key``: NFKC and Unicode case folding, computed in Python so both
    databases agree) is the primary key, so the database itself refuses a second connection or
    pool whose name is the same whatever its case. The row is written in the transaction that
    creates or renames its owner, and goes with it (ON DELETE CASCADE).
    """

    __tablename__ = "llm_names"

    name_key: Mapped[str] = mapped_column(Text, primary_key=True)
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("llm_connections.id", ondelete="CASCADE"), unique=True
    )
    pool_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("llm_pools.id", ondelete="CASCADE"), unique=True
    )

    __table_args__ = (
        CheckConstraint("(connection_id IS NULL) <> (pool_id IS NULL)", name="one_owner"),
    )


class PoolMemberRow(Base):
    __tablename__ = "llm_pool_members"

    pool_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("llm_pools.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("llm_connections.id", ondelete="CASCADE"), primary_key=True
    )
    priority: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (Index("ix_llm_pool_members_connection", "connection_id"),)


class HealthCheckRow(Base):
    __tablename__ = "llm_connection_health_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("llm_connections.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    success: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    response_preview: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_llm_connection_health_checks_conn_time", "connection_id", "created_at"),
    )


class WebhookRow(Base):
    """Where connection events are POSTed; the signing secret is encrypted (context: the id)."""

    __tablename__ = "llm_webhooks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    owner: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDeliveryRow(Base):
    """One attempt at delivering one event to one webhook."""

    __tablename__ = "llm_webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("llm_webhooks.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    success: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_llm_webhook_deliveries_webhook_time", "webhook_id", "created_at"),)


class TokenRow(Base):
    """An API token: only the SHA-256 of the whole token is kept. ``key_id`` is the public part
    written in the token itself (``ump_<key_id>_<secret>``), to find the row without a scan."""

    __tablename__ = "llm_api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    team: Mapped[str | None] = mapped_column(String(200))
    sources: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    monthly_budget: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_llm_api_tokens_updated", "updated_at"),)


class AuditRow(Base):
    """The audit log: append-only (rows older than the retention setting are pruned)."""

    __tablename__ = "llm_audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    token_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    token_name: Mapped[str | None] = mapped_column(String(200))
    client: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(200))
    target_name: Mapped[str | None] = mapped_column(String(200))
    fields: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")

    __table_args__ = (
        Index("ix_llm_audit_log_time", "created_at"),
        Index("ix_llm_audit_log_action_time", "action", "created_at"),
        Index("ix_llm_audit_log_token_time", "token_id", "created_at"),
        Index("ix_llm_audit_log_target_time", "target_id", "created_at"),
    )


class SpotInstanceRow(Base):
    """An AWS spot instance this server launched (or adopted by its tags), and the ``aws_spot``
    connection that serves its model. Only the SHA-256 of its heartbeat token is kept."""

    __tablename__ = "llm_spot_instances"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    aws_instance_id: Mapped[str] = mapped_column(String(64), unique=True)
    region: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    instance_type: Mapped[str] = mapped_column(String(64))
    image_id: Mapped[str | None] = mapped_column(String(200))
    launch_template: Mapped[str | None] = mapped_column(String(200))
    model_name: Mapped[str] = mapped_column(String(300))
    port: Mapped[int] = mapped_column(Integer, default=8000)
    max_price: Mapped[float | None] = mapped_column(Float)
    spot_price: Mapped[float | None] = mapped_column(Float)  # USD per hour, at launch
    state: Mapped[str] = mapped_column(String(32))
    state_reason: Mapped[str | None] = mapped_column(Text)
    public_ip: Mapped[str | None] = mapped_column(String(64))
    private_ip: Mapped[str | None] = mapped_column(String(64))
    launch_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("llm_connections.id", ondelete="SET NULL")
    )
    heartbeat_token_hash: Mapped[str | None] = mapped_column(String(64))  # None: adopted
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    adopted: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_llm_spot_instances_state", "state"),
        Index("ix_llm_spot_instances_connection", "connection_id"),
        Index("ix_llm_spot_instances_team", "team"),
    )
