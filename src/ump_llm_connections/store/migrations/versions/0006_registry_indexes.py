"""Indexes for the registry's read path: the change check and, on SQLite, the tag filters.

``updated_at`` is indexed so that the gateway's change check (row count and latest
``updated_at``, run after every change a health probe makes) no longer reads the whole table.

On SQLite a filter on the JSON ``tags`` column cannot use an index (PostgreSQL has its GIN
index): each integration flag gets an index that also holds ``is_active`` and ``tags``, so a
flag-and-tag filter counts its matches from the index without reading the connections' rows.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLAGS = ("livekit", "mcp", "automation")


def upgrade() -> None:
    op.create_index("ix_llm_connections_updated", "llm_connections", ["updated_at"])
    if op.get_bind().dialect.name == "sqlite":
        for flag in FLAGS:
            op.create_index(
                f"ix_llm_connections_{flag}_tags",
                "llm_connections",
                [f"use_in_{flag}", "is_active", "tags"],
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for flag in FLAGS:
            op.drop_index(f"ix_llm_connections_{flag}_tags", table_name="llm_connections")
    op.drop_index("ix_llm_connections_updated", table_name="llm_connections")
