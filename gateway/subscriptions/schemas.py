from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gateway.plans.schemas import PlanOut


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=60)


class ChangePlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: str = Field(max_length=36)


class KeyOut(BaseModel):
    """What a key's owner sees of it later: never the key or its hash."""

    id: str
    subscription_id: str
    prefix: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyList(BaseModel):
    items: list[KeyOut]


class IssuedKeyOut(BaseModel):
    """A new key. `api_key` is shown this once: only its hash is kept."""

    key: KeyOut
    api_key: str


class SubscriptionOut(BaseModel):
    id: str
    api_id: str
    api_slug: str
    api_name: str
    url: str
    plan: PlanOut
    status: str
    created_at: datetime
    cancelled_at: datetime | None


class SubscriptionList(BaseModel):
    items: list[SubscriptionOut]


class SubscribedOut(BaseModel):
    """The answer to subscribing: the subscription and its first key, shown this once."""

    subscription: SubscriptionOut
    api_key: str
    key: KeyOut


class PlanRef(BaseModel):
    id: str
    name: str


class SubscriberOut(BaseModel):
    """A subscriber as the API's owner sees it: a display name, not the email."""

    id: str
    consumer: str
    plan: PlanRef
    status: str
    created_at: datetime
    cancelled_at: datetime | None


class SubscriberList(BaseModel):
    items: list[SubscriberOut]
