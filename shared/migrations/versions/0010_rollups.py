"""executions: minute/hour/day rollups (per API, and per version/subscription/key) and
latency histograms; history and purge indexes

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "execution_rollups",
        sa.Column("api_id", sa.String(length=36), nullable=False),
        sa.Column("resolution_s", sa.Integer(), nullable=False),
        sa.Column("bucket_start", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("status_class", sa.Integer(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("latency_max", sa.Float(), nullable=False),
        sa.Column("upstream_calls", sa.BigInteger(), nullable=False),
        sa.Column("upstream_sum", sa.Float(), nullable=False),
        sa.Column("gateway_calls", sa.BigInteger(), nullable=False),
        sa.Column("gateway_sum", sa.Float(), nullable=False),
        sa.Column("last_at", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "api_id",
            "resolution_s",
            "bucket_start",
            "version",
            "subscription_id",
            "key_id",
            "status_class",
            name=op.f("pk_execution_rollups"),
        ),
    )
    op.create_table(
        "api_rollups",
        sa.Column("api_id", sa.String(length=36), nullable=False),
        sa.Column("resolution_s", sa.Integer(), nullable=False),
        sa.Column("bucket_start", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_class", sa.Integer(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("latency_max", sa.Float(), nullable=False),
        sa.Column("upstream_calls", sa.BigInteger(), nullable=False),
        sa.Column("upstream_sum", sa.Float(), nullable=False),
        sa.Column("gateway_calls", sa.BigInteger(), nullable=False),
        sa.Column("gateway_sum", sa.Float(), nullable=False),
        sa.Column("last_at", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "api_id", "resolution_s", "bucket_start", "status_class", name=op.f("pk_api_rollups")
        ),
    )
    with op.batch_alter_table("api_rollups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_api_rollups_resolution_bucket", ["resolution_s", "bucket_start"], unique=False
        )
    op.create_table(
        "latency_rollups",
        sa.Column("api_id", sa.String(length=36), nullable=False),
        sa.Column("resolution_s", sa.Integer(), nullable=False),
        sa.Column("bucket_start", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(length=1), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "api_id",
            "resolution_s",
            "metric",
            "bucket_start",
            "bucket",
            name=op.f("pk_latency_rollups"),
        ),
    )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_executions_subscription_id"))
        batch_op.create_index(
            "ix_executions_subscription_started", ["subscription_id", "started_at"], unique=False
        )
        batch_op.create_index("ix_executions_started_at", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_started_at")
        batch_op.drop_index("ix_executions_subscription_started")
        batch_op.create_index(
            batch_op.f("ix_executions_subscription_id"), ["subscription_id"], unique=False
        )
    op.drop_table("latency_rollups")
    op.drop_table("api_rollups")
    op.drop_table("execution_rollups")
