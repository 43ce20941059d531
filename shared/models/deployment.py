from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, IdMixin, TimestampMixin, UTCDateTime

# queued → building → starting → running; or failed (with `error`), or
# stopped (by its owner/admin), or superseded (a newer deployment took over).
# A running deployment whose container dies is restarted by the reconciler
# with backoff, and ends as crash-looping when it keeps dying.
DEPLOYMENT_STATUSES = (
    "queued",
    "building",
    "starting",
    "running",
    "failed",
    "stopped",
    "superseded",
    "crash-looping",
)
IN_PROGRESS_STATUSES = ("queued", "building", "starting")
# Picked up by a worker and not done yet: only a queued deployment can still be called off.
WORKING_STATUSES = ("building", "starting")
# Serving, or on its way to serve.
LIVE_STATUSES = (*IN_PROGRESS_STATUSES, "running")
# Done for good: nothing will run it again (the reconciler removes its container).
FINISHED_STATUSES = ("failed", "stopped", "superseded", "crash-looping")
# Where a deployment's live build feed ends: running, or done for good.
SETTLED_STATUSES = ("running", *FINISHED_STATUSES)
assert set(DEPLOYMENT_STATUSES) == {*IN_PROGRESS_STATUSES, *SETTLED_STATUSES}


class Deployment(IdMixin, TimestampMixin, Base):
    __tablename__ = "deployments"
    # A retried deploy request with the same Idempotency-Key finds its first deployment.
    __table_args__ = (UniqueConstraint("api_id", "idempotency_key"),)

    api_id: Mapped[str] = mapped_column(ForeignKey("apis.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("api_versions.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    image_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    container_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    container_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(200), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(36))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    restart_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_restart_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_exit: Mapped[str | None] = mapped_column(Text, nullable=True)  # "exit 1", "oom-killed"
    last_exit_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The fencing token of the deploy job working on it (executor/deploy.py): every
    # state change the job makes holds it, so a job that lost it changes nothing.
    lease: Mapped[str | None] = mapped_column(String(36), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
