"""documents.claim_host and claim_pid: claims of a dead local process are released at once

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 06:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_host", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("claim_pid", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("claim_pid")
        batch_op.drop_column("claim_host")
