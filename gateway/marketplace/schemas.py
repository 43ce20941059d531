from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gateway.plans.schemas import PlanOut


class Price(BaseModel):
    price_per_1000_minor: int
    currency: str


class MarketplaceItem(BaseModel):
    id: str
    slug: str
    name: str
    description: str
    owner: str  # a display name, not the owner's email
    url: str
    running: bool
    plan_count: int
    has_free_plan: bool
    lowest_price: Price | None  # of the active plans; null when there is none


class MarketplacePage(BaseModel):
    items: list[MarketplaceItem]
    total: int
    limit: int
    offset: int


class MarketplaceDetail(BaseModel):
    id: str
    slug: str
    name: str
    description: str
    owner: str
    visibility: str
    url: str
    running: bool
    example_request: str
    plans: list[PlanOut]  # active plans, cheapest first
    created_at: datetime
    suspended: bool = False  # only its owner and admins ever see a suspended API here


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: str | None = Field(default=None, max_length=36)
