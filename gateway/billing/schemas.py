"""Billing as the gateway answers it: analytics' shapes, usage with the quota left."""

from __future__ import annotations

from analytics.billing.schemas import UsageOut
from gateway.billing.quotas import Quotas


class SubscriptionUsage(UsageOut):
    plan_id: str
    quota: Quotas  # as the data plane counts them
