"""changes: headline, dates and opt-out routes of a change

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("headline", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("dates", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("opt_outs", sa.JSON(), server_default="[]", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_column("opt_outs")
        batch_op.drop_column("dates")
        batch_op.drop_column("headline")
