from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1)


class DeployOut(BaseModel):
    deployment_id: str
    status: str
    version: int
    replayed: bool = False  # true when an Idempotency-Key matched an earlier request


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class LastExit(BaseModel):
    """How the deployment's container last died (the reconciler then restarted it,
    or gave up: crash-looping)."""

    description: str  # "exit 1", "oom-killed", "container missing"
    exit_code: int | None
    oom_killed: bool
    at: datetime | None


class StatusOut(BaseModel):
    api_id: str
    status: str
    deployment_id: str | None = None
    version: int | None = None
    active_deployment_id: str | None = None
    error: str | None = None
    log_tail: str | None = None
    url: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    ready_at: datetime | None = None
    restart_count: int = 0
    last_exit: LastExit | None = None


class DeploymentOut(BaseModel):
    id: str
    version: int
    status: str
    error: str | None
    created_at: datetime
    started_at: datetime | None
    ready_at: datetime | None
    finished_at: datetime | None


class DeploymentList(BaseModel):
    items: list[DeploymentOut]
