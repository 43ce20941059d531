from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Visibility = Literal["public", "private"]


class ApiCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    visibility: Visibility = "private"
    slug: str | None = Field(default=None, min_length=1, max_length=48)


class ApiUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Visibility | None = None


class ApiOut(BaseModel):
    id: str
    slug: str
    name: str
    description: str
    visibility: str
    owner_id: str
    active_deployment_id: str | None
    url: str
    created_at: datetime
    updated_at: datetime
    # An admin suspended it (or its owner's account): no deploys, off the marketplace,
    # calls answered 403 `api_suspended`.
    suspended: bool = False
    suspended_at: datetime | None = None
    suspension_reason: str | None = None


class ApiList(BaseModel):
    items: list[ApiOut]


class RuntimeSettings(BaseModel):
    """Per-API container settings; null means the platform default. Applied at the next
    deploy (the data-plane timeout at once). Values above the admin-set maximums are 422."""

    model_config = ConfigDict(extra="forbid")

    memory_mb: int | None = Field(default=None, ge=32)
    cpus: float | None = Field(default=None, ge=0.05)
    timeout_seconds: float | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    max_response_mb: int | None = Field(default=None, ge=1)
    env: dict[str, str] = Field(default_factory=dict, max_length=64)


class RuntimeSettingsOut(RuntimeSettings):
    maximums: dict[str, float]
    # Sent by the data plane on every call as X-Veil-Gateway-Secret and given to the
    # app as VEIL_GATEWAY_SECRET; shown here so the owner can check it elsewhere too.
    gateway_secret: str
