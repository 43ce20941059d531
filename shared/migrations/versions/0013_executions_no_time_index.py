"""executions: drop the index on started_at alone

Every execution stored also went into this index, for the retention purge only: a
fifth of what PostgreSQL spent to store an event (bench/analytics.py). The purge now
goes API by API through the index on (api_id, started_at); stats read the rollups.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_started_at")


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index("ix_executions_started_at", ["started_at"], unique=False)
