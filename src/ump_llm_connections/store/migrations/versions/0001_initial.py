"""The guide's three tables: connections, usage and health checks.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _history_columns(table: str) -> list[SchemaItem]:
    """Id, connection (cascading delete) and time: what usage and health-check rows share."""
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["llm_connections.id"],
            name=f"fk_{table}_connection_id_llm_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    ]


def upgrade() -> None:
    op.create_table(
        "llm_connections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("connection_type", sa.String(32), nullable=False),
        sa.Column("api_format", sa.String(32), nullable=False),
        sa.Column("base_url", sa.String(2000), nullable=False),
        sa.Column("model_name", sa.String(300), nullable=False),
        sa.Column("api_key_encrypted", sa.Text(), nullable=True),
        sa.Column("api_key_mask", sa.String(32), nullable=True),
        sa.Column("organization_id", sa.String(200), nullable=True),
        sa.Column("api_version", sa.String(200), nullable=True),
        sa.Column("deployment", sa.String(200), nullable=True),
        sa.Column("extra_headers", JSON_DOC, nullable=False),
        sa.Column("timeout", sa.Float(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("use_in_livekit", sa.Boolean(), nullable=False),
        sa.Column("use_in_mcp", sa.Boolean(), nullable=False),
        sa.Column("use_in_automation", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("tags", JSON_DOC, nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("rpm_limit", sa.Integer(), nullable=True),
        sa.Column("tpm_limit", sa.Integer(), nullable=True),
        sa.Column("input_cost_per_million", sa.Float(), nullable=True),
        sa.Column("output_cost_per_million", sa.Float(), nullable=True),
        sa.Column("aws_instance_id", sa.String(200), nullable=True),
        sa.Column("aws_region", sa.String(200), nullable=True),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_tested_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_llm_connections"),
    )
    op.create_index(
        "uq_llm_connections_owner_name",
        "llm_connections",
        [sa.text("coalesce(owner, '')"), sa.text("lower(name)")],
        unique=True,
    )
    for name, columns in (
        ("ix_llm_connections_name", ["name"]),
        # Each filter index ends in name, the default sort: a page reads only its own rows.
        ("ix_llm_connections_type_active", ["connection_type", "is_active", "name"]),
        ("ix_llm_connections_status", ["status", "name"]),
        ("ix_llm_connections_livekit", ["use_in_livekit", "is_active", "name"]),
        ("ix_llm_connections_mcp", ["use_in_mcp", "is_active", "name"]),
        ("ix_llm_connections_automation", ["use_in_automation", "is_active", "name"]),
        ("ix_llm_connections_created", ["created_at"]),
        ("ix_llm_connections_team", ["team"]),
        ("ix_llm_connections_aws_instance", ["aws_instance_id"]),
    ):
        op.create_index(name, "llm_connections", columns)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_llm_connections_tags",
            "llm_connections",
            ["tags"],
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        )

    op.create_table(
        "llm_connection_usage",
        *_history_columns("llm_connection_usage"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
    )
    op.create_table(
        "llm_connection_health_checks",
        *_history_columns("llm_connection_health_checks"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_preview", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_llm_connection_usage_conn_time", "llm_connection_usage", ["connection_id", "created_at"]
    )
    op.create_index(
        "ix_llm_connection_health_checks_conn_time",
        "llm_connection_health_checks",
        ["connection_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_table("llm_connection_health_checks")
    op.drop_table("llm_connection_usage")
    op.drop_table("llm_connections")
