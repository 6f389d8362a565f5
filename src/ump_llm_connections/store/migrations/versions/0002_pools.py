"""Pools (connection groups) and their members; usage rows name their pool; monthly budgets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A batch on SQLite reflects the table, and by default every table its foreign keys point at:
# those hold expression indexes on names that SQLite reflection cannot read (a SAWarning at every
# fresh start). The rebuilt table needs only its own columns and constraints.
NO_FK_TABLES = {"resolve_fks": False}


def upgrade() -> None:
    op.create_table(
        "llm_pools",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_llm_pools"),
    )
    op.create_index("uq_llm_pools_name", "llm_pools", [sa.text("lower(name)")], unique=True)
    op.create_table(
        "llm_pool_members",
        sa.Column("pool_id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pool_id"],
            ["llm_pools.id"],
            name="fk_llm_pool_members_pool_id_llm_pools",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["llm_connections.id"],
            name="fk_llm_pool_members_connection_id_llm_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pool_id", "connection_id", name="pk_llm_pool_members"),
    )
    op.create_index("ix_llm_pool_members_connection", "llm_pool_members", ["connection_id"])
    # Plain ADD COLUMN: a batch rebuild on SQLite would drop the expression index on names.
    op.add_column("llm_connections", sa.Column("monthly_budget", sa.Float(), nullable=True))
    with op.batch_alter_table("llm_connection_usage", reflect_kwargs=NO_FK_TABLES) as batch:
        batch.add_column(sa.Column("pool_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            "fk_llm_connection_usage_pool_id_llm_pools",
            "llm_pools",
            ["pool_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_llm_connection_usage_pool_time", ["pool_id", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("llm_connection_usage", reflect_kwargs=NO_FK_TABLES) as batch:
        batch.drop_index("ix_llm_connection_usage_pool_time")
        batch.drop_constraint("fk_llm_connection_usage_pool_id_llm_pools", type_="foreignkey")
        batch.drop_column("pool_id")
    op.drop_column("llm_connections", "monthly_budget")  # SQLite >= 3.35 drops in place
    op.drop_table("llm_pool_members")
    op.drop_table("llm_pools")
