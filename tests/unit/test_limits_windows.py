"""gateway.dataplane.limits without Redis: calendar windows, bucket maths, header syntax."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from gateway.dataplane.limits import (
    Decision,
    Policy,
    ceil_seconds,
    decide,
    keys_for,
    policy_header,
    rate_state,
    refusal,
    state_header,
    windows_at,
)
from shared.errors import ServiceUnavailable, TooManyRequests

# draft-ietf-httpapi-ratelimit-headers-11 §3 and §4: a List of String items with
# integer parameters, members separated by ", " as RFC 9651 serializes them.
_ITEM = r'"[a-z]+"(;[a-z]+=\d+)+'
SF_LIST = re.compile(rf"^{_ITEM}(, {_ITEM})*$")


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def test_window_of_an_ordinary_moment() -> None:
    now = at("2026-03-10T18:00:00.25")
    windows = windows_at(now)
    assert (windows.day, windows.month) == ("20260310", "202603")
    assert windows.day_start == at("2026-03-10T00:00:00")
    assert windows.day_end == at("2026-03-11T00:00:00")
    assert windows.month_end == at("2026-04-01T00:00:00")
    assert windows.month_seconds == 31 * 86_400
    assert ceil_seconds(windows.day_end - now) == 21_600  # 21 599.75 s, rounded up


def test_last_instant_of_a_year() -> None:
    now = at("2026-12-31T23:59:59.9")
    windows = windows_at(now)
    assert (windows.day, windows.month) == ("20261231", "202612")
    assert windows.day_end == windows.month_end == at("2027-01-01T00:00:00")
    assert ceil_seconds(windows.day_end - now) == 1
    after = windows_at(at("2027-01-01T00:00:00"))  # midnight belongs to the new day
    assert (after.day, after.month) == ("20270101", "202701")


def test_month_lengths_follow_the_calendar() -> None:
    assert windows_at(at("2028-02-29T12:00:00")).month_seconds == 29 * 86_400  # leap year
    assert windows_at(at("2027-02-28T12:00:00")).month_end == at("2027-03-01T00:00:00")
    assert windows_at(at("2026-04-30T23:00:00")).month_seconds == 30 * 86_400


def test_ceil_seconds_never_rounds_a_wait_down_or_to_zero() -> None:
    assert ceil_seconds(0.001) == 1
    assert ceil_seconds(0.0) == 1
    assert ceil_seconds(1.0) == 1
    assert ceil_seconds(1.01) == 2


def test_policy_validation_and_unlimited() -> None:
    assert Policy(None, None, None, None).unlimited
    assert not Policy(None, None, None, 0).unlimited
    assert Policy(10, None, None, None).bucket == (10, 10)
    assert Policy(10, 50, None, None).bucket == (10, 50)
    assert Policy(None, 50, 5, None).bucket is None  # a burst means nothing without a rate
    for bad in [(0, None, None, None), (1, 0, None, None), (1, None, -1, None), (1, 1, 1, -1)]:
        with pytest.raises(ValueError, match="must"):
            Policy(*bad)


def test_policy_header() -> None:
    policy = Policy(100, None, 1000, 30_000)
    header = policy_header(policy, 31 * 86_400)
    assert header == b'"burst";q=100;w=1, "daily";q=1000;w=86400, "monthly";q=30000;w=2678400'
    assert SF_LIST.match(header.decode())
    # A bucket that refills in 2.5 s is announced over 3 s: never more than the rate.
    assert policy_header(Policy(20, 50, None, None), 0) == b'"burst";q=50;w=3'
    assert policy_header(Policy(100, 10, None, None), 0) == b'"burst";q=10;w=1'
    assert policy_header(Policy(None, None, 5, None), 0) == b'"daily";q=5;w=86400'


def test_rate_state_of_a_bucket() -> None:
    fresh = rate_state((20, 20), 0.0)
    assert (fresh.available, fresh.full_in, fresh.next_in) == (20, 0.0, 0.0)
    after_one = rate_state((20, 20), 50_000.0)
    assert (after_one.available, after_one.full_in) == (19, 0.05)
    empty = rate_state((20, 20), 1_000_000.0)
    assert empty.available == 0
    assert empty.next_in == pytest.approx(0.05)
    # 1e6 / 3 is not a whole number of microseconds: four calls leave three of seven.
    assert rate_state((3, 7), 4 * 1e6 / 3).available == 3
    assert rate_state((3, 7), 7 * 1e6 / 3).available == 0


def test_decide_allowed_carries_both_fields() -> None:
    policy = Policy(20, None, 1000, None)
    now = at("2026-03-10T18:00:00.25")
    windows = windows_at(now)
    decision = decide(policy, 0, rate_state((20, 20), 50_000.0), 42, 0, now, windows)
    assert decision == Decision(
        True,
        None,
        None,
        [
            (b"ratelimit-policy", b'"burst";q=20;w=1, "daily";q=1000;w=86400'),
            (b"ratelimit", b'"burst";r=19;t=1, "daily";r=958;t=21600'),
        ],
    )
    for _, value in decision.headers:
        assert SF_LIST.match(value.decode())


def test_decide_names_the_longest_wait() -> None:
    policy = Policy(1, 1, 5, 10)
    now = at("2026-12-31T23:59:59.9")
    windows = windows_at(now)
    empty = rate_state((1, 1), 1_000_000.0)
    rate_only = decide(policy, 1, empty, 1, 1, now, windows)
    assert (rate_only.allowed, rate_only.reason, rate_only.retry_after) == (False, "rate", 1)
    # The daily quota renews in 0.1 s but the bucket needs a whole second.
    both = decide(policy, 1 | 2, empty, 5, 5, now, windows)
    assert (both.reason, both.retry_after) == ("daily", 1)
    monthly = decide(policy, 2 | 4, rate_state((1, 1), 0.0), 5, 10, now, windows)
    assert (monthly.reason, monthly.retry_after) == ("monthly", 1)
    assert dict(monthly.headers)[b"ratelimit"] == (
        b'"burst";r=1;t=0, "daily";r=0;t=1, "monthly";r=0;t=1'
    )


def test_state_header_for_an_empty_bucket_points_at_the_next_call() -> None:
    policy = Policy(1, 10, None, None)
    now = at("2026-03-10T18:00:00")
    header = state_header(policy, rate_state((1, 10), 9_500_000.0), 0, 0, now, windows_at(now))
    assert header == b'"burst";r=0;t=1'  # full in 9.5 s, but the next call in 0.5 s


def test_keys_share_one_cluster_slot() -> None:
    windows = windows_at(at("2026-12-31T23:59:59"))
    assert keys_for("veil:rl", "sub-1", windows) == (
        "veil:rl:{sub-1}:rate",
        "veil:rl:{sub-1}:d:20261231",
        "veil:rl:{sub-1}:m:202612",
    )


def test_refusal_errors() -> None:
    headers = [(b"ratelimit-policy", b'"daily";q=5;w=86400'), (b"ratelimit", b'"daily";r=0;t=60')]
    daily = refusal(Decision(False, "daily", 60, headers))
    assert isinstance(daily, TooManyRequests)
    assert (daily.status, daily.code) == (429, "daily_quota_exceeded")
    assert daily.details == {
        "type": "https://veil.dev/problems/daily_quota_exceeded",
        "quota": "daily",
        "violated-policies": ["daily"],
    }
    assert daily.headers == {
        "Retry-After": "60",
        "RateLimit-Policy": '"daily";q=5;w=86400',
        "RateLimit": '"daily";r=0;t=60',
    }
    assert "daily quota" in daily.message

    monthly = refusal(Decision(False, "monthly", 5, headers))
    assert (monthly.code, monthly.details["quota"]) == ("monthly_quota_exceeded", "monthly")
    rate = refusal(Decision(False, "rate", 1, headers))
    assert (rate.status, rate.code) == (429, "rate_limited")
    assert "quota" not in rate.details
    assert rate.headers["Retry-After"] == "1"

    down = refusal(Decision(False, "unavailable", 1, headers[:1]))
    assert isinstance(down, ServiceUnavailable)
    assert (down.status, down.code) == (503, "limits_unavailable")
    assert down.headers == {"Retry-After": "1", "RateLimit-Policy": '"daily";q=5;w=86400'}

    with pytest.raises(ValueError, match="refused"):
        refusal(Decision(True, None, None, []))
