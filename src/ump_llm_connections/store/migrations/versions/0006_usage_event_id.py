"""Usage rows carry an event id, so that rows replayed from the spill file are stored once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("llm_connection_usage", sa.Column("event_id", sa.Uuid(), nullable=True))
    op.create_index(
        "uq_llm_connection_usage_event_id", "llm_connection_usage", ["event_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_llm_connection_usage_event_id", table_name="llm_connection_usage")
    with op.batch_alter_table("llm_connection_usage") as batch:
        batch.drop_column("event_id")
