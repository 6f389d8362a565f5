"""Health monitoring per connection: probe interval and mode, auto-reactivation, and whether the
monitor (not a person) deactivated it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: a batch (copy-and-move) table rebuild on SQLite would
    # lose the expression index that keeps names unique.
    op.add_column("llm_connections", sa.Column("health_interval_s", sa.Integer(), nullable=True))
    op.add_column(
        "llm_connections",
        sa.Column("probe_mode", sa.String(16), nullable=False, server_default="cheap"),
    )
    for flag in ("auto_reactivate", "deactivated_by_health"):
        op.add_column(
            "llm_connections",
            sa.Column(flag, sa.Boolean(), nullable=False, server_default=sa.false()),
        )


def downgrade() -> None:
    # In place (SQLite >= 3.35), not a batch rebuild: that would lose the expression index.
    for column in ("deactivated_by_health", "auto_reactivate", "probe_mode", "health_interval_s"):
        op.drop_column("llm_connections", column)
