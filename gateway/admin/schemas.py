from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SuspendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Shown to the API's owner; keep it to what they may read.
    reason: str | None = Field(default=None, max_length=500)


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["developer", "consumer", "admin"]


class AdminUserOut(BaseModel):
    id: str
    email: str
    role: str
    created_at: datetime
    suspended: bool
    suspended_at: datetime | None
    suspended_by: str | None  # the admin's user id
    suspension_reason: str | None
    api_count: int


class AdminUserPage(BaseModel):
    items: list[AdminUserOut]
    next_cursor: str | None  # pass as `cursor` for the next (older) page; None: no more


class AdminApiOut(BaseModel):
    id: str
    slug: str
    name: str
    visibility: str
    owner_id: str
    owner_email: str
    active_deployment_id: str | None
    created_at: datetime
    suspended: bool
    suspended_at: datetime | None
    suspended_by: str | None  # the admin's user id
    suspension_reason: str | None
    # "api": suspended on its own; "owner": because its owner's account is suspended
    # (lifted with the owner's suspension). None when not suspended.
    suspension_cause: str | None


class AdminApiPage(BaseModel):
    items: list[AdminApiOut]
    next_cursor: str | None
