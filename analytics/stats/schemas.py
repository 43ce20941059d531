"""What the stats endpoint answers (the gateway documents and checks the same shapes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel


class LatencySummary(BaseModel):
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    avg: float | None = None
    max: float | None = None


class ConsumerUsage(BaseModel):
    subscription_id: str | None  # None: the owner's own calls (bearer token, no key)
    calls: int
    errors: int
    error_rate: float
    bytes_out: int


class SeriesPoint(BaseModel):
    at: datetime
    calls: int
    errors: int
    client_errors: int
    latency_avg_ms: float | None
    # From the histogram; None when the stats are narrowed (see analytics.stats.service) or a
    # point spans several days (windows over 500 days).
    latency_p95_ms: float | None


class Series(BaseModel):
    resolution: str  # the rollup read: minute, hour or day
    step_seconds: int  # one point per step (several resolutions when the window is long)
    points: list[SeriesPoint]


class ApiStats(BaseModel):
    api_id: str
    since: datetime  # the asked window, widened to whole minutes
    until: datetime
    calls: int
    errors: int  # 5xx: the API or the platform failed
    client_errors: int  # 4xx
    error_rate: float
    status_classes: dict[str, int]  # "2xx": calls, …
    latency_ms: LatencySummary  # total, in the data plane
    upstream_ms: LatencySummary  # waiting for the container
    gateway_ms: LatencySummary  # the data plane's own share
    bytes_in: int
    bytes_out: int
    last_call_at: datetime | None
    top_consumers: Sequence[ConsumerUsage]  # a Sequence: the gateway's view narrows it
    series: Series
