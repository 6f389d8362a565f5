"""Bedrock connections may carry their own AWS access key id (the secret key is their encrypted
``api_key``); without one they sign with the server's AWS credential chain.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("llm_connections", sa.Column("aws_access_key_id", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("llm_connections", "aws_access_key_id")
