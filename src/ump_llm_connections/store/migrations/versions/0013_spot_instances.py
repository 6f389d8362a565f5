"""AWS spot instances that register themselves: ``llm_spot_instances``, each linked to the
``aws_spot`` connection that serves its model.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "llm_spot_instances",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("aws_instance_id", sa.String(64), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("instance_type", sa.String(64), nullable=False),
        sa.Column("image_id", sa.String(200), nullable=True),
        sa.Column("launch_template", sa.String(200), nullable=True),
        sa.Column("model_name", sa.String(300), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("max_price", sa.Float(), nullable=True),
        sa.Column("spot_price", sa.Float(), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("public_ip", sa.String(64), nullable=True),
        sa.Column("private_ip", sa.String(64), nullable=True),
        sa.Column("launch_time", ts, nullable=True),
        sa.Column("ended_at", ts, nullable=True),
        sa.Column("connection_id", sa.Uuid(), nullable=True),
        sa.Column("heartbeat_token_hash", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", ts, nullable=True),
        sa.Column("last_heartbeat_at", ts, nullable=True),
        sa.Column("adopted", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["llm_connections.id"],
            name="fk_llm_spot_instances_connection_id_llm_connections",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_llm_spot_instances"),
        sa.UniqueConstraint("aws_instance_id", name="uq_llm_spot_instances_aws_instance_id"),
    )
    op.create_index("ix_llm_spot_instances_state", "llm_spot_instances", ["state"])
    op.create_index("ix_llm_spot_instances_connection", "llm_spot_instances", ["connection_id"])
    op.create_index("ix_llm_spot_instances_team", "llm_spot_instances", ["team"])


def downgrade() -> None:
    op.drop_table("llm_spot_instances")
