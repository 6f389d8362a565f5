"""An index for the usage reports across connections: rows by time.

``GET /api/usage`` reads the rows of a window across every connection; without an index on
``created_at`` it read the whole table (a million rows for a day's window) and sorted it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_llm_connection_usage_time", "llm_connection_usage", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_llm_connection_usage_time", table_name="llm_connection_usage")
