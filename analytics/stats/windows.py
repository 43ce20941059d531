"""Time windows: whole minutes, their cover by day/hour/minute rollups, chart resolution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.errors import Unprocessable
from shared.models.execution import DAY, HOUR, MINUTE

MAX_POINTS = 500
RESOLUTION_NAMES = {MINUTE: "minute", HOUR: "hour", DAY: "day"}


def aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def floor_to(value: datetime, seconds: int) -> datetime:
    epoch = int(value.timestamp() // seconds) * seconds
    return datetime.fromtimestamp(epoch, UTC)


def ceil_to(value: datetime, seconds: int) -> datetime:
    epoch = math.ceil(value.timestamp() / seconds) * seconds
    return datetime.fromtimestamp(epoch, UTC)


def resolve_window(
    since: datetime | None, until: datetime | None, default: timedelta = timedelta(hours=24)
) -> tuple[datetime, datetime]:
    """The asked window widened to whole minutes (rollups are per minute); default: last 24 h."""
    until = aware(until) if until else datetime.now(UTC) + timedelta(seconds=1)
    since = aware(since) if since else until - default
    if since >= until:
        raise Unprocessable("'since' must be before 'until'.", code="invalid_window")
    return floor_to(since, MINUTE), ceil_to(until, MINUTE)


def cover(
    since: datetime, until: datetime, levels: tuple[int, ...] = (DAY, HOUR, MINUTE)
) -> list[tuple[int, datetime, datetime]]:
    """Ranges (resolution, start, end) of rollup buckets that exactly tile a minute-aligned window.

    Whole days from day rollups, the hours at the edges from hour rollups, the
    remaining minutes from minute rollups: at most five ranges, few rows.
    """
    if since >= until:
        return []
    resolution, finer = levels[0], levels[1:]
    if not finer:
        return [(resolution, since, until)]
    start, end = ceil_to(since, resolution), floor_to(until, resolution)
    if start >= end:
        return cover(since, until, finer)
    return [*cover(since, start, finer), (resolution, start, end), *cover(end, until, finer)]


@dataclass(frozen=True)
class SeriesPlan:
    resolution: int  # rollup table to read
    step: int  # seconds per point: a whole number of resolutions
    first: datetime  # start of the first point
    points: int


def series_plan(since: datetime, until: datetime) -> SeriesPlan:
    """Minutes up to 6 hours, hours up to 14 days, days beyond; at most MAX_POINTS points."""
    span = (until - since).total_seconds()
    if span <= 6 * HOUR:
        resolution = MINUTE
    elif span <= 14 * DAY:
        resolution = HOUR
    else:
        resolution = DAY
    first = floor_to(since, resolution)
    buckets = math.ceil((until - first).total_seconds() / resolution)
    step = resolution * max(1, math.ceil(buckets / MAX_POINTS))
    points = math.ceil((until - first).total_seconds() / step)
    return SeriesPlan(resolution, step, first, points)
