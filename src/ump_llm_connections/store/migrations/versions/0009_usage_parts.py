"""Usage in parts: prompt-cache reads and writes and reasoning tokens on each usage row, and a
connection's prices for cache reads and writes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRICES = ("cache_read_cost_per_million", "cache_write_cost_per_million")
PARTS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def upgrade() -> None:
    for column in PRICES:
        op.add_column("llm_connections", sa.Column(column, sa.Float(), nullable=True))
    for column in PARTS:
        op.add_column("llm_connection_usage", sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    # In place (SQLite >= 3.35), not a batch rebuild: that would drop 0008's triggers.
    for column in PARTS:
        op.drop_column("llm_connection_usage", column)
    for column in PRICES:
        op.drop_column("llm_connections", column)
