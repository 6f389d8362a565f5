"""Access control: API tokens, the audit log, owners and teams of pools and webhooks, and the
token behind each usage row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JsonDoc = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "llm_api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("sources", JsonDoc, nullable=False),
        sa.Column("expires_at", Stamp, nullable=True),
        sa.Column("rpm_limit", sa.Integer(), nullable=True),
        sa.Column("monthly_budget", sa.Float(), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("revoked_at", Stamp, nullable=True),
        sa.Column("last_used_at", Stamp, nullable=True),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_llm_api_tokens"),
        sa.UniqueConstraint("key_id", name="uq_llm_api_tokens_key_id"),
    )
    op.create_index("ix_llm_api_tokens_updated", "llm_api_tokens", ["updated_at"])
    op.create_table(
        "llm_audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("token_id", sa.Uuid(), nullable=True),
        sa.Column("token_name", sa.String(200), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=True),
        sa.Column("target_id", sa.String(200), nullable=True),
        sa.Column("target_name", sa.String(200), nullable=True),
        sa.Column("fields", JsonDoc, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_llm_audit_log"),
    )
    op.create_index("ix_llm_audit_log_time", "llm_audit_log", ["created_at"])
    op.create_index("ix_llm_audit_log_action_time", "llm_audit_log", ["action", "created_at"])
    op.create_index("ix_llm_audit_log_token_time", "llm_audit_log", ["token_id", "created_at"])
    op.create_index("ix_llm_audit_log_target_time", "llm_audit_log", ["target_id", "created_at"])
    for table in ("llm_pools", "llm_webhooks"):
        op.add_column(table, sa.Column("owner", sa.String(200), nullable=True))
        op.add_column(table, sa.Column("team", sa.String(200), nullable=True))
    op.add_column("llm_connection_usage", sa.Column("token_id", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_llm_connection_usage_token_time", "llm_connection_usage", ["token_id", "created_at"]
    )


def downgrade() -> None:
    # In place (SQLite >= 3.35), not a batch rebuild: that would drop 0008's triggers.
    op.drop_index("ix_llm_connection_usage_token_time", table_name="llm_connection_usage")
    op.drop_column("llm_connection_usage", "token_id")
    for table in ("llm_webhooks", "llm_pools"):
        op.drop_column(table, "team")
        op.drop_column(table, "owner")
    op.drop_table("llm_audit_log")
    op.drop_table("llm_api_tokens")
