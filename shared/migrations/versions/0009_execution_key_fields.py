"""executions: key, subscription, version and gateway time

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 11:25:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("subscription_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("gateway_ms", sa.Float(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_executions_subscription_id"), ["subscription_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_executions_subscription_id"))
        batch_op.drop_column("gateway_ms")
        batch_op.drop_column("version")
        batch_op.drop_column("subscription_id")
        batch_op.drop_column("key_id")
