from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

# Column ranges: Integer for rate and burst, BigInteger for money and counts.
MAX_INT = 2**31 - 1
MAX_BIG = 2**63 - 1
CURRENCY = r"^[A-Z]{3}$"  # ISO 4217 alphabetic code, e.g. USD, EUR


class PlanCreate(BaseModel):
    """A plan of an API. A null limit or quota means unlimited; a limit, when set, is
    at least 1 (an API nobody may call is made private, not given a zero quota).
    `burst` needs `rate_per_second` and is at least as large."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60)
    price_per_1000_minor: int = Field(default=0, ge=0, le=MAX_BIG)
    currency: str = Field(default="USD", pattern=CURRENCY)
    included_calls_per_month: int = Field(default=0, ge=0, le=MAX_BIG)
    rate_per_second: int | None = Field(default=None, ge=1, le=MAX_INT)
    burst: int | None = Field(default=None, ge=1, le=MAX_INT)
    daily_quota: int | None = Field(default=None, ge=1, le=MAX_BIG)
    monthly_quota: int | None = Field(default=None, ge=1, le=MAX_BIG)


class PlanUpdate(BaseModel):
    """Only the fields sent change; send null for a limit or quota to lift it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=60)
    price_per_1000_minor: int | None = Field(default=None, ge=0, le=MAX_BIG)
    currency: str | None = Field(default=None, pattern=CURRENCY)
    included_calls_per_month: int | None = Field(default=None, ge=0, le=MAX_BIG)
    rate_per_second: int | None = Field(default=None, ge=1, le=MAX_INT)
    burst: int | None = Field(default=None, ge=1, le=MAX_INT)
    daily_quota: int | None = Field(default=None, ge=1, le=MAX_BIG)
    monthly_quota: int | None = Field(default=None, ge=1, le=MAX_BIG)


class PlanOut(BaseModel):
    id: str
    api_id: str
    name: str
    is_free: bool
    price_per_1000_minor: int
    currency: str
    included_calls_per_month: int
    rate_per_second: int | None
    burst: int | None
    daily_quota: int | None
    monthly_quota: int | None
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PlanList(BaseModel):
    items: list[PlanOut]
