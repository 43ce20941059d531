"""per-API runtime settings

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 08:19:15.221880
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apis", schema=None) as batch_op:
        batch_op.add_column(sa.Column("memory_mb", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cpus", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("timeout_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("env", sa.JSON(), server_default="{}", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("apis", schema=None) as batch_op:
        batch_op.drop_column("env")
        batch_op.drop_column("timeout_seconds")
        batch_op.drop_column("cpus")
        batch_op.drop_column("memory_mb")
