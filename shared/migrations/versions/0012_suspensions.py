"""suspensions: admins suspend an API or a user

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.models.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _suspension_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("suspended_at", shared.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("suspended_by", sa.String(length=36), nullable=True),
        sa.Column("suspension_reason", sa.String(length=500), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        for column in _suspension_columns():
            batch_op.add_column(column)
    with op.batch_alter_table("apis", schema=None) as batch_op:
        for column in _suspension_columns():
            batch_op.add_column(column)
        batch_op.add_column(sa.Column("suspension_cause", sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apis", schema=None) as batch_op:
        for name in ("suspension_cause", "suspension_reason", "suspended_by", "suspended_at"):
            batch_op.drop_column(name)
    with op.batch_alter_table("users", schema=None) as batch_op:
        for name in ("suspension_reason", "suspended_by", "suspended_at"):
            batch_op.drop_column(name)
