"""Billing rules: periods, rounding, proration, lines. Integers only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.billing.service import (
    InvalidPeriod,
    Line,
    PlanTerms,
    adjustment_line,
    billed_minutes,
    invoice_currency,
    line_amount,
    never_fewer,
    parse_period,
    period_bounds,
    period_of,
    plan_line,
    platform_fee,
    previous_period,
    prorated_included,
    round_half_up,
)
from shared.models import InvoiceLine

MARCH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
MONTH = MARCH[1] - MARCH[0]
PRO = PlanTerms("p-pro", "Pro", 250, "EUR", 3100)


def test_periods_are_utc_calendar_months() -> None:
    assert period_bounds("2026-03") == MARCH
    assert period_bounds("2024-02")[1] - period_bounds("2024-02")[0] == timedelta(days=29)
    assert period_bounds("2026-12")[1] == datetime(2027, 1, 1, tzinfo=UTC)
    assert previous_period("2026-01") == "2025-12"
    assert previous_period("2026-03") == "2026-02"
    # The last microsecond of March in UTC is March, whatever the zone it is written in.
    late = datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert period_of(late) == "2026-03"
    assert period_of(late + timedelta(microseconds=1)) == "2026-04"
    assert period_of(datetime.fromisoformat("2026-04-01T01:30:00+02:00")) == "2026-03"
    for bad in ("2026-13", "2026-00", "26-03", "2026-3", "2026-03-01", "1969-12", ""):
        with pytest.raises(InvalidPeriod):
            parse_period(bad)


def test_round_half_up_on_integers() -> None:
    assert round_half_up(0, 1000) == 0
    assert round_half_up(499, 1000) == 0
    assert round_half_up(500, 1000) == 1  # a half goes up
    assert round_half_up(1500, 1000) == 2
    assert round_half_up(2500, 1000) == 3  # not banker's rounding
    assert round_half_up(2499, 1000) == 2
    assert round_half_up(10**30 + 500, 1000) == 10**27 + 1  # no float anywhere
    with pytest.raises(ValueError, match="non-negative"):
        round_half_up(-1, 1000)


def test_line_amount_and_fee() -> None:
    assert line_amount(0, 250) == 0
    assert line_amount(1234, 250) == 309  # 308.5 rounds up
    assert line_amount(3, 166) == 0  # 0.498
    assert line_amount(3, 167) == 1  # 0.501
    assert line_amount(10**6, 0) == 0  # free
    assert platform_fee(309, 2000) == 62  # 61.8
    assert platform_fee(25, 2000) == 5
    assert platform_fee(2, 2500) == 1  # 0.5 rounds up
    assert platform_fee(1, 2000) == 0  # 0.2
    assert platform_fee(1000, 0) == 0
    assert platform_fee(1000, 10_000) == 1000


def test_included_calls_are_prorated_by_time_and_floored() -> None:
    assert prorated_included(3100, MONTH, MONTH) == 3100  # the whole month: all of it
    assert prorated_included(3100, timedelta(days=10), MONTH) == 1000
    assert prorated_included(1000, timedelta(days=10), MONTH) == 322  # 322.58 floored
    assert prorated_included(1000, timedelta(0), MONTH) == 0
    halves = prorated_included(1001, MONTH / 2, MONTH) * 2
    assert halves == 1000  # two halves never add up to more than the month
    with pytest.raises(ValueError, match="whole month"):
        prorated_included(1000, MONTH + timedelta(seconds=1), MONTH)


def test_plan_line_prices_calls_beyond_the_prorated_allowance() -> None:
    start, end = MARCH[0], MARCH[0] + timedelta(days=10)
    line = plan_line(PRO, start, end, MONTH, calls=1500)
    assert (line.calls, line.included, line.billable) == (1500, 1000, 500)
    assert line.amount_minor == 125
    assert (line.currency, line.price_per_1000_minor, line.kind) == ("EUR", 250, "plan")
    under = plan_line(PRO, start, end, MONTH, calls=999)
    assert (under.billable, under.amount_minor) == (0, 0)


def _billed(calls: int, included: int, price: int) -> InvoiceLine:
    billable = max(0, calls - included)
    return InvoiceLine(
        kind="plan",
        plan_id="p",
        plan_name="Pro",
        segment_start=MARCH[0],
        segment_end=MARCH[1],
        calls=calls,
        included=included,
        billable=billable,
        price_per_1000_minor=price,
        currency="EUR",
        amount_minor=line_amount(billable, price),
    )


def test_adjustment_bills_exactly_the_difference() -> None:
    billed = _billed(calls=1234, included=0, price=250)  # 309
    assert adjustment_line(billed, 1234, "2026-03") is None
    assert adjustment_line(billed, 1200, "2026-03") is None  # fewer found: nothing to give back
    late = adjustment_line(billed, 1244, "2026-03")
    assert late is not None
    assert (late.kind, late.adjusts_period, late.calls, late.billable) == (
        "adjustment",
        "2026-03",
        10,
        10,
    )
    assert late.amount_minor == line_amount(1244, 250) - 309 == 2
    # Late calls still inside the allowance cost nothing, then only what exceeds it.
    within = _billed(calls=900, included=1000, price=250)
    small = adjustment_line(within, 950, "2026-03")
    assert small is not None
    assert (small.calls, small.billable, small.amount_minor) == (50, 0, 0)
    crossing = adjustment_line(within, 1100, "2026-03")
    assert crossing is not None
    assert (crossing.billable, crossing.amount_minor) == (100, 25)


def _line(currency: str, amount: int) -> Line:
    return Line("plan", "p", "P", MARCH[0], MARCH[1], 1, 0, 1, 1, currency, amount)


def test_invoice_currency_is_the_paid_lines() -> None:
    assert invoice_currency([_line("EUR", 300), _line("USD", 0)]) == "EUR"
    assert invoice_currency([_line("USD", 0), _line("EUR", 0)]) == "EUR"


def test_counts_never_go_down_while_a_segment_stands() -> None:
    fresh = plan_line(PRO, MARCH[0], MARCH[1], MONTH, calls=3000)
    counted = _billed(calls=3200, included=3100, price=250)
    counted.plan_id = PRO.plan_id
    kept = never_fewer([fresh], [counted])[0]
    assert (kept.calls, kept.billable, kept.amount_minor) == (3200, 100, 25)
    more = plan_line(PRO, MARCH[0], MARCH[1], MONTH, calls=3300)
    assert never_fewer([more], [counted]) == [more]
    # A segment a plan change has cut short since is counted afresh: the calls of the
    # change's minute went to the new plan's segment, which bills them.
    cut = plan_line(PRO, MARCH[0], MARCH[0] + timedelta(days=10), MONTH, calls=3000)
    assert never_fewer([cut], [counted]) == [cut]
    counted.segment_end = MARCH[0] + timedelta(days=5)
    assert never_fewer([cut], [counted]) == [cut]


def test_calls_are_billed_by_whole_minutes_to_the_plan_in_force_at_the_minute_s_end() -> None:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(f"2026-03-{text}").replace(tzinfo=UTC)

    # Subscribed mid-minute, two plan changes within one minute, cancelled mid-minute.
    segments = [
        (at("10T08:00:20"), at("12T10:00:30")),
        (at("12T10:00:30"), at("12T10:00:45")),
        (at("12T10:00:45"), at("20T17:59:59.5")),
    ]
    assert billed_minutes(segments) == [
        (at("10T08:00"), at("12T10:00")),  # its calls of 10:00 went to the plan after
        (at("12T10:00"), at("12T10:00")),  # no minute ended under it: nothing billed
        (at("12T10:00"), at("20T18:00")),  # nothing follows: its last minute stays
    ]
    # A whole month on one plan, and a plan held to the end of the month.
    assert billed_minutes([MARCH]) == [MARCH]
    assert billed_minutes([(MARCH[0], at("05T12:00")), (at("05T12:00"), MARCH[1])]) == [
        (MARCH[0], at("05T12:00")),
        (at("05T12:00"), MARCH[1]),
    ]
    # A gap (cancelled, then on a plan again within the same minute): no minute twice.
    assert billed_minutes([(MARCH[0], at("05T12:00:10")), (at("05T12:00:50"), MARCH[1])]) == [
        (MARCH[0], at("05T12:00")),
        (at("05T12:00"), MARCH[1]),
    ]
    assert billed_minutes([]) == []
