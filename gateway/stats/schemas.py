"""Stats as the gateway answers them: analytics' shapes, the owner's view naming consumers."""

from __future__ import annotations

from pydantic import Field

from analytics.stats.schemas import ApiStats, ConsumerUsage


class NamedConsumerUsage(ConsumerUsage):
    consumer: str | None = Field(
        default=None, description="the subscriber's display name; null for the owner's own calls"
    )


class OwnerApiStats(ApiStats):
    top_consumers: list[NamedConsumerUsage]
