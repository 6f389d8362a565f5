"""An index for the registry's read path: the gateway's change check.

``updated_at`` is indexed so that the gateway's change check (row count and latest
``updated_at``, run after every change a health probe makes and every few seconds) no longer
reads the whole table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_llm_connections_updated", "llm_connections", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_llm_connections_updated", table_name="llm_connections")
