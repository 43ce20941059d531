"""All tables, imported here so that Alembic and tests see one metadata."""

from shared.models.api import Api, ApiVersion
from shared.models.audit import AuditEntry
from shared.models.base import Base
from shared.models.billing import Invoice, InvoiceLine, SubscriptionPlanPeriod
from shared.models.deployment import Deployment
from shared.models.execution import Execution
from shared.models.marketplace import ApiKey, Plan, Subscription
from shared.models.secret import ApiSecret
from shared.models.user import RefreshToken, User

__all__ = [
    "Api",
    "ApiKey",
    "ApiSecret",
    "ApiVersion",
    "AuditEntry",
    "Base",
    "Deployment",
    "Execution",
    "Invoice",
    "InvoiceLine",
    "Plan",
    "RefreshToken",
    "Subscription",
    "SubscriptionPlanPeriod",
    "User",
]
