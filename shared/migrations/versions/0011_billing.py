"""billing: subscription plan periods, invoices and their lines

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 12:00:00.000000
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.models.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    periods = op.create_table(
        "subscription_plan_periods",
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("plan_id", sa.String(length=36), nullable=False),
        sa.Column("started_at", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", shared.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
            name=op.f("fk_subscription_plan_periods_plan_id_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_plan_periods_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_plan_periods")),
    )
    with op.batch_alter_table("subscription_plan_periods", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscription_plan_periods_plan_id"), ["plan_id"], unique=False
        )
        batch_op.create_index(
            "ix_subscription_plan_periods_subscription_started",
            ["subscription_id", "started_at"],
            unique=False,
        )

    op.create_table(
        "invoices",
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("consumer_id", sa.String(length=36), nullable=False),
        sa.Column("api_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("finalized_at", shared.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("subscription_id", "period", name=op.f("uq_invoices_subscription_id")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoices_consumer_id"), ["consumer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_invoices_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index("ix_invoices_period_status", ["period", "status"], unique=False)

    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("adjusts_period", sa.String(length=7), nullable=True),
        sa.Column("plan_id", sa.String(length=36), nullable=False),
        sa.Column("plan_name", sa.String(length=60), nullable=False),
        sa.Column("segment_start", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("segment_end", shared.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("included", sa.BigInteger(), nullable=False),
        sa.Column("billable", sa.BigInteger(), nullable=False),
        sa.Column("price_per_1000_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_lines_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
    )
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invoice_lines_invoice_id"), ["invoice_id"], unique=False
        )

    # Subscriptions made before this revision get their one plan period: from when
    # they were made until they were cancelled (or still open).
    utc = shared.models.base.UTCDateTime(timezone=True)
    subscriptions = sa.table(
        "subscriptions",
        sa.column("id", sa.String(36)),
        sa.column("plan_id", sa.String(36)),
        sa.column("created_at", utc),
        sa.column("cancelled_at", utc),
    )
    rows = op.get_bind().execute(sa.select(subscriptions)).all()
    if rows:
        op.bulk_insert(
            periods,
            [
                {
                    "id": str(uuid.uuid4()),
                    "subscription_id": sub_id,
                    "plan_id": plan_id,
                    "started_at": created,
                    "ended_at": cancelled,
                }
                for sub_id, plan_id, created, cancelled in rows
            ],
        )


def downgrade() -> None:
    # Dropping a table drops its indexes with it.
    op.drop_table("invoice_lines")
    op.drop_table("invoices")
    op.drop_table("subscription_plan_periods")
