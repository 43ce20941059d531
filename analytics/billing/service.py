"""Billing rules, and invoices built from them.

The rules (plain functions, integers only; README "Billing" says the same):

- A billing period is a calendar month in UTC, named "YYYY-MM", [1st 00:00, next 1st).
- A call is billable when the gateway forwarded it to the API (it has an upstream
  time), whatever the API answered. The gateway's own answers (bad key 401, no
  subscription 403, limits 429, API not running 503, unreachable 502, timeout 504)
  are not billed. Calls are counted from the rollups (`repository.calls_between`),
  which are kept for good: purging raw executions never changes an invoice.
- An invoice has one line per plan segment: the stretch of the month the
  subscription spent on one plan. Calls are priced by the plan in force at the end
  of the minute they were made in (rollups count whole minutes): the minute of a
  plan change goes to the new plan; the last minute of a cancelled subscription to
  its last plan (`billed_minutes`). A segment's included calls are the plan's
  monthly allowance times the fraction of the month it covers, rounded down
  (integer microseconds); a plan held all month gets all of it. A plan change
  takes effect at once, upgrades and downgrades alike, and starts a new segment;
  cancelling ends the last one.
- A line's amount is billable calls * price per 1,000 / 1,000, rounded half up to
  a whole minor unit, once per line. The invoice total is the sum of its lines.
- The platform fee is total * `platform_fee_bps` / 10,000 per invoice, rounded
  half up; the API's owner earns total - fee.
- An invoice is a draft while its month runs (refreshed by the billing job and
  when its subscriber reads it) and is finalized by `close_period` once the month
  is over. A final invoice never changes: closing again does nothing to it.
- A segment's count never goes down between refreshes while the segment stands (a
  plan change moves the calls of its minute to the new plan's segment).
- Calls that reach analytics after their month was closed ("late events") are
  billed on the next month's invoice as "adjustment" lines, one per segment of the
  closed month: its calls recounted minus the calls billed, priced with the closed
  line's terms (the amount is the recounted line's amount minus the billed one).
  Only the month just before is recounted, and only while the next invoice is a
  draft; calls later still are not billed.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.billing import repository
from analytics.stats.windows import ceil_to, floor_to
from shared.errors import Unprocessable
from shared.models import InvoiceLine, Plan
from shared.models.execution import MINUTE

log = logging.getLogger("veil.analytics.billing")

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_MICROSECOND = timedelta(microseconds=1)


class InvalidPeriod(Unprocessable):
    code = "invalid_period"


# ---- periods ----


def parse_period(period: str) -> tuple[int, int]:
    match = _PERIOD.match(period)
    if match is None or int(match.group(1)) < 1970:
        raise InvalidPeriod(f"'{period}' is not a month written YYYY-MM.")
    return int(match.group(1)), int(match.group(2))


def period_of(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of the month in UTC."""
    year, month = parse_period(period)
    start = datetime(year, month, 1, tzinfo=UTC)
    days = calendar.monthrange(year, month)[1]
    return start, start + timedelta(days=days)


def previous_period(period: str) -> str:
    start, _ = period_bounds(period)
    return period_of(start - timedelta(days=1))


# ---- pricing ----


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest integer, halves up (non-negative inputs)."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_half_up takes a non-negative numerator and a positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


def line_amount(billable: int, price_per_1000_minor: int) -> int:
    return round_half_up(billable * price_per_1000_minor, 1000)


def platform_fee(total_minor: int, fee_bps: int) -> int:
    return round_half_up(total_minor * fee_bps, 10_000)


def prorated_included(included_per_month: int, covered: timedelta, month: timedelta) -> int:
    """The share of a monthly allowance for `covered` of a month lasting `month`, floored."""
    if not timedelta(0) <= covered <= month:
        raise ValueError("a segment covers between nothing and the whole month")
    return included_per_month * (covered // _MICROSECOND) // (month // _MICROSECOND)


def billed_minutes(
    segments: Sequence[tuple[datetime, datetime]],
) -> list[tuple[datetime, datetime]]:
    """The whole minutes whose calls each segment bills, for consecutive segments of one
    subscription and month, oldest first: calls are counted per minute (from the
    rollups), and a minute's calls go to the plan in force at its end. A segment
    starts at the minute it starts in; it ends where the next one starts (a plan change
    bills its minute to the new plan) or, when none follows (cancelled), at the end of
    its last minute. A segment shorter than that may bill no minute at all.
    """
    out = []
    for i, (start, end) in enumerate(segments):
        first, stop = floor_to(start, MINUTE), ceil_to(end, MINUTE)
        if i + 1 < len(segments):
            stop = min(stop, floor_to(segments[i + 1][0], MINUTE))
        out.append((first, max(first, stop)))
    return out


# ---- lines ----


@dataclass(frozen=True)
class PlanTerms:
    """What a line copies from its plan when it is computed."""

    plan_id: str
    name: str
    price_per_1000_minor: int
    currency: str
    included_calls_per_month: int

    @classmethod
    def of(cls, plan: Plan) -> PlanTerms:
        return cls(
            plan.id,
            plan.name,
            plan.price_per_1000_minor,
            plan.currency,
            plan.included_calls_per_month,
        )


@dataclass(frozen=True)
class Line:
    kind: str  # "plan" | "adjustment"
    plan_id: str
    plan_name: str
    segment_start: datetime
    segment_end: datetime
    calls: int
    included: int
    billable: int
    price_per_1000_minor: int
    currency: str
    amount_minor: int
    adjusts_period: str | None = None

    def to_model(self) -> InvoiceLine:
        return InvoiceLine(
            kind=self.kind,
            adjusts_period=self.adjusts_period,
            plan_id=self.plan_id,
            plan_name=self.plan_name,
            segment_start=self.segment_start,
            segment_end=self.segment_end,
            calls=self.calls,
            included=self.included,
            billable=self.billable,
            price_per_1000_minor=self.price_per_1000_minor,
            currency=self.currency,
            amount_minor=self.amount_minor,
        )


def plan_line(
    terms: PlanTerms, start: datetime, end: datetime, month: timedelta, calls: int
) -> Line:
    """One segment's line: its calls, its prorated allowance, the rest priced."""
    included = prorated_included(terms.included_calls_per_month, end - start, month)
    billable = max(0, calls - included)
    return Line(
        kind="plan",
        plan_id=terms.plan_id,
        plan_name=terms.name,
        segment_start=start,
        segment_end=end,
        calls=calls,
        included=included,
        billable=billable,
        price_per_1000_minor=terms.price_per_1000_minor,
        currency=terms.currency,
        amount_minor=line_amount(billable, terms.price_per_1000_minor),
    )


def adjustment_line(billed: InvoiceLine, calls_now: int, period: str) -> Line | None:
    """Calls of a closed segment counted after it was billed, or None when there are none.

    The closed line's allowance and price apply, so the two invoices together charge
    exactly what the closed one would have with every call known."""
    if calls_now <= billed.calls:
        return None
    billable_now = max(0, calls_now - billed.included)
    return Line(
        kind="adjustment",
        adjusts_period=period,
        plan_id=billed.plan_id,
        plan_name=billed.plan_name,
        segment_start=billed.segment_start,
        segment_end=billed.segment_end,
        calls=calls_now - billed.calls,
        included=0,
        billable=billable_now - billed.billable,
        price_per_1000_minor=billed.price_per_1000_minor,
        currency=billed.currency,
        amount_minor=line_amount(billable_now, billed.price_per_1000_minor) - billed.amount_minor,
    )


def never_fewer(lines: Sequence[Line], counted: Sequence[InvoiceLine]) -> list[Line]:
    """A segment's count never goes down while the segment stands: where a draft already
    counted more calls for the same segment (same plan, start and end) than a recount
    finds, the higher count stands. Calls only ever arrive and the rollups are never
    purged, so this is a safety net. A segment a plan change has cut short since is
    counted afresh: the calls of the change's minute, which it may have counted, now
    belong to the new plan's segment (billed_minutes), which counts them."""
    before: dict[tuple[str, datetime], InvoiceLine] = {
        (old.plan_id, old.segment_start): old for old in counted if old.kind == "plan"
    }
    kept = []
    for line in lines:
        old = before.get((line.plan_id, line.segment_start))
        if (
            line.kind == "plan"
            and old is not None
            and old.segment_end == line.segment_end
            and old.calls > line.calls
        ):
            billable = max(0, old.calls - line.included)
            line = replace(
                line,
                calls=old.calls,
                billable=billable,
                amount_minor=line_amount(billable, line.price_per_1000_minor),
            )
        kept.append(line)
    return kept


def invoice_currency(lines: Sequence[Line]) -> str:
    """The currency of the last line that costs something, else of the last line: a
    free line costs nothing in any currency. Plan changes never mix two paid currencies
    (the gateway refuses them)."""
    paid = [line for line in lines if line.amount_minor]
    return (paid or list(lines))[-1].currency


async def build_lines(
    session: AsyncSession, subscription_id: str, api_id: str, period: str
) -> list[Line]:
    """The lines of a subscription's invoice for `period`, from what is stored now."""
    start, end = period_bounds(period)
    segments = []
    for plan_period, plan in await repository.plan_periods(session, subscription_id, start, end):
        seg_start = max(plan_period.started_at, start)
        seg_end = min(plan_period.ended_at or end, end)
        if seg_start < seg_end:
            segments.append((plan, seg_start, seg_end))
    lines = []
    minutes = billed_minutes([(seg_start, seg_end) for _, seg_start, seg_end in segments])
    for (plan, seg_start, seg_end), (first, stop) in zip(segments, minutes, strict=True):
        calls = await repository.calls_between(session, api_id, subscription_id, first, stop)
        lines.append(plan_line(PlanTerms.of(plan), seg_start, seg_end, end - start, calls))
    previous = previous_period(period)
    billed = await repository.get_invoice(session, subscription_id, previous)
    if billed is not None and billed.status == "final":
        old = sorted(
            (line for line in await repository.lines_of(session, billed.id) if line.kind == "plan"),
            key=lambda line: line.segment_start,
        )
        minutes = billed_minutes([(line.segment_start, line.segment_end) for line in old])
        for line, (first, stop) in zip(old, minutes, strict=True):
            now_counted = await repository.calls_between(
                session, api_id, subscription_id, first, stop
            )
            adjustment = adjustment_line(line, now_counted, previous)
            if adjustment is not None:
                lines.append(adjustment)
    return lines


# ---- invoices ----


async def sync_invoice(
    sessions: async_sessionmaker[AsyncSession],
    subscription_id: str,
    period: str,
    *,
    now: datetime,
    fee_bps: int,
    finalize: bool,
) -> str:
    """Bring one draft up to date, and finalize it when `finalize`. A final invoice is
    left alone. Returns what happened: "draft", "finalized", "already_final", "empty"
    (nothing to bill) or "gone" (the subscription was deleted; its draft is kept)."""
    async with sessions() as session:
        existing = await repository.get_invoice(session, subscription_id, period)
        if existing is not None and existing.status == "final":
            return "already_final"
        who = await repository.subject(session, subscription_id)
        if who is None:
            # Its API was deleted with its subscriptions: the draft stands as last computed.
            if existing is None or not finalize:
                return "gone"
            invoice = await repository.lock_invoice(session, subscription_id, period)
            if invoice is None or invoice.status == "final":
                return "already_final"
            invoice.fee_bps = fee_bps
            invoice.fee_minor = platform_fee(invoice.total_minor, fee_bps)
            invoice.status, invoice.finalized_at = "final", now
            await session.commit()
            return "finalized"
        lines = await build_lines(session, subscription_id, who.api_id, period)
        if not lines and existing is None:
            return "empty"
        await repository.ensure_invoice(
            session, who, period, lines[-1].currency if lines else "USD"
        )
        invoice = await repository.lock_invoice(session, subscription_id, period)
        assert invoice is not None  # ensured just above, in this transaction
        if invoice.status == "final":  # closed by someone else meanwhile
            await session.rollback()
            return "already_final"
        if not lines:
            await session.delete(invoice)
            await session.commit()
            return "empty"
        lines = never_fewer(lines, await repository.lines_of(session, invoice.id))
        await repository.replace_lines(session, invoice, [line.to_model() for line in lines])
        invoice.currency = invoice_currency(lines)
        invoice.total_minor = sum(line.amount_minor for line in lines)
        invoice.fee_bps = fee_bps
        invoice.fee_minor = platform_fee(invoice.total_minor, fee_bps)
        if finalize:
            invoice.status, invoice.finalized_at = "final", now
        await session.commit()
        return "finalized" if finalize else "draft"


async def refresh_drafts(
    sessions: async_sessionmaker[AsyncSession],
    period: str,
    *,
    now: datetime,
    fee_bps: int,
    consumer_id: str | None = None,
) -> int:
    """Recompute the drafts of `period` (one consumer's, or everyone's); returns how many."""
    start, end = period_bounds(period)
    async with sessions() as session:
        ids = await repository.subscriptions_to_bill(
            session, period, start, end, previous_period(period), consumer_id
        )
    refreshed = 0
    for subscription_id in sorted(ids):
        outcome = await sync_invoice(
            sessions, subscription_id, period, now=now, fee_bps=fee_bps, finalize=False
        )
        refreshed += outcome == "draft"
    return refreshed


@dataclass
class CloseReport:
    period: str
    finalized: int = 0
    already_final: int = 0
    empty: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)


class PeriodNotOver(Unprocessable):
    code = "period_not_over"


async def close_period(
    sessions: async_sessionmaker[AsyncSession], period: str, *, now: datetime, fee_bps: int
) -> CloseReport:
    """Finalize every invoice of a month that is over. Idempotent: final invoices are
    skipped, so running it again (or after a crash half-way) finalizes only the rest.
    Each invoice is finalized in its own transaction."""
    start, end = period_bounds(period)
    if now < end:
        raise PeriodNotOver(f"{period} is not over yet: it ends at {end.isoformat()}.")
    async with sessions() as session:
        candidates = await repository.subscriptions_to_bill(
            session, period, start, end, previous_period(period)
        )
        done = await repository.final_subscriptions(session, period)
    report = CloseReport(period, already_final=len(candidates & done))
    for subscription_id in sorted(candidates - done):
        outcome = await sync_invoice(
            sessions, subscription_id, period, now=now, fee_bps=fee_bps, finalize=True
        )
        report.outcomes[subscription_id] = outcome
        if outcome == "finalized":
            report.finalized += 1
        elif outcome == "already_final":
            report.already_final += 1
        else:
            report.empty += 1
    if report.finalized:
        log.info("closed %s: %d invoices finalized", period, report.finalized)
    return report
