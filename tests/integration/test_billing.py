"""Invoices from stored calls: drafts, closing a month, late events, plan changes,
cancellation, earnings and revenue. Rules are called directly with chosen instants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from analytics.billing import reports, repository
from analytics.billing.job import BillingJob
from analytics.billing.service import (
    PeriodNotOver,
    close_period,
    line_amount,
    refresh_drafts,
    sync_invoice,
)
from analytics.retention import purge_raw
from shared.db import create_engine, create_sessionmaker
from shared.models import Invoice, InvoiceLine
from shared.models.billing import FinalInvoiceChanged
from tests.integration.billing_support import (
    Sessions,
    at,
    calls,
    cancel_at,
    change_at,
    invoice_with_lines,
    shop,
    snapshot,
    subscribe_at,
    user,
)

FEE = 2000
FREE = {"name": "Free", "included_calls_per_month": 1000}
PAID = {"name": "Paid", "price_per_1000_minor": 250, "currency": "EUR"}
INCLUDED = {"name": "Included", "price_per_1000_minor": 100, "included_calls_per_month": 1000}
BASIC = {"name": "Basic", "price_per_1000_minor": 100, "included_calls_per_month": 3100}
PRO = {"name": "Pro", "price_per_1000_minor": 50, "included_calls_per_month": 3100}
METERED = {"name": "Metered", "price_per_1000_minor": 200, "included_calls_per_month": 3100}


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_amounts_for_free_paid_and_included_calls_plans(sessions: Sessions) -> None:
    where = await shop(sessions, FREE, PAID, INCLUDED)
    before = at("2026-02-10T08:00")
    free = await subscribe_at(sessions, where, "Free", before)
    paid = await subscribe_at(sessions, where, "Paid", before)
    included = await subscribe_at(sessions, where, "Included", before)
    await calls(sessions, free, at("2026-03-02T10:00"), 1500)
    await calls(sessions, paid, at("2026-03-05T10:00"), 1232)
    await calls(sessions, paid, at("2026-03-06T10:00"), 2, status=500)  # the API failed: billed
    await calls(sessions, paid, at("2026-03-06T11:00"), 5, status=429, forwarded=False)
    await calls(sessions, paid, at("2026-03-06T11:00"), 3, status=503, forwarded=False)
    await calls(sessions, paid, at("2026-02-28T23:59:59.990"), 5)  # February
    await calls(sessions, paid, at("2026-04-01T00:00"), 5)  # April
    await calls(sessions, included, at("2026-03-31T23:00"), 1500)

    assert await refresh_drafts(sessions, "2026-03", now=at("2026-03-31T23:30"), fee_bps=FEE) == 3
    expected = {free: (1500, 1000, 500, 0, "USD"), paid: (1234, 0, 1234, 309, "EUR")}
    expected[included] = (1500, 1000, 500, 50, "USD")
    for subscription_id, (n, inc, billable, amount, currency) in expected.items():
        found = await invoice_with_lines(sessions, subscription_id, "2026-03")
        assert found is not None
        invoice, (line,) = found
        assert (line.calls, line.included, line.billable, line.amount_minor) == (
            n,
            inc,
            billable,
            amount,
        )
        assert (line.segment_start, line.segment_end) == (at("2026-03-01"), at("2026-04-01"))
        assert (invoice.status, invoice.total_minor, invoice.currency) == (
            "draft",
            amount,
            currency,
        )
        assert invoice.fee_minor == (amount * FEE * 2 + 10_000) // 20_000
    assert line_amount(1234, 250) == 309  # 308.5, rounded half up


async def test_draft_then_close_is_final_and_idempotent(sessions: Sessions) -> None:
    where = await shop(sessions, PAID)
    subscription = await subscribe_at(sessions, where, "Paid", at("2026-02-10T08:00"))
    await calls(sessions, subscription, at("2026-03-03T10:00"), 100)
    await refresh_drafts(sessions, "2026-03", now=at("2026-03-10"), fee_bps=FEE)
    first = await invoice_with_lines(sessions, subscription, "2026-03")
    assert first is not None
    assert (first[0].status, first[0].total_minor) == ("draft", 25)

    await calls(sessions, subscription, at("2026-03-20T10:00"), 100)  # the draft follows
    await refresh_drafts(sessions, "2026-03", now=at("2026-03-21"), fee_bps=FEE)
    second = await invoice_with_lines(sessions, subscription, "2026-03")
    assert second is not None
    assert second[0].id == first[0].id
    assert (second[0].total_minor, second[1][0].calls) == (50, 200)

    with pytest.raises(PeriodNotOver):
        await close_period(sessions, "2026-03", now=at("2026-03-31T23:59:59"), fee_bps=FEE)
    report = await close_period(sessions, "2026-03", now=at("2026-04-01T00:10"), fee_bps=FEE)
    assert (report.finalized, report.already_final) == (1, 0)
    final = await invoice_with_lines(sessions, subscription, "2026-03")
    assert final is not None
    assert (final[0].status, final[0].finalized_at) == ("final", at("2026-04-01T00:10"))
    assert (final[0].total_minor, final[0].fee_minor, final[0].fee_bps) == (50, 10, FEE)

    again = await close_period(sessions, "2026-03", now=at("2026-04-02"), fee_bps=3000)
    assert (again.finalized, again.already_final) == (0, 1)
    assert snapshot(await invoice_with_lines(sessions, subscription, "2026-03")) == snapshot(final)


async def test_late_events_leave_the_final_invoice_and_go_to_the_next(
    sessions: Sessions,
) -> None:
    where = await shop(sessions, PAID)
    subscription = await subscribe_at(sessions, where, "Paid", at("2026-02-10T08:00"))
    await calls(sessions, subscription, at("2026-03-05T10:00"), 1234)
    await close_period(sessions, "2026-03", now=at("2026-04-01T00:10"), fee_bps=FEE)
    closed = snapshot(await invoice_with_lines(sessions, subscription, "2026-03"))
    assert closed["invoice"]["total_minor"] == 309

    # Ten calls of March stored after March was closed, and two of April.
    await calls(sessions, subscription, at("2026-03-31T23:59:59"), 10)
    await calls(sessions, subscription, at("2026-04-02T10:00"), 2)
    report = await close_period(sessions, "2026-03", now=at("2026-04-03"), fee_bps=FEE)
    assert (report.finalized, report.already_final) == (0, 1)
    outcome = await sync_invoice(
        sessions, subscription, "2026-03", now=at("2026-04-03"), fee_bps=FEE, finalize=False
    )
    assert outcome == "already_final"
    assert snapshot(await invoice_with_lines(sessions, subscription, "2026-03")) == closed

    # They are billed on April's invoice, as an adjustment for March.
    await refresh_drafts(sessions, "2026-04", now=at("2026-04-03"), fee_bps=FEE)
    april = await invoice_with_lines(sessions, subscription, "2026-04")
    assert april is not None
    invoice, (plan, adjustment) = april
    assert (plan.kind, plan.calls, plan.amount_minor) == ("plan", 2, 1)  # 0.5 rounds up
    assert (adjustment.kind, adjustment.adjusts_period) == ("adjustment", "2026-03")
    assert (adjustment.calls, adjustment.billable) == (10, 10)
    assert adjustment.amount_minor == line_amount(1244, 250) - 309 == 2
    assert invoice.total_minor == 3
    # April's close keeps the adjustment; no second adjustment appears after that.
    await close_period(sessions, "2026-04", now=at("2026-05-01T00:10"), fee_bps=FEE)
    await refresh_drafts(sessions, "2026-05", now=at("2026-05-02"), fee_bps=FEE)
    may = await invoice_with_lines(sessions, subscription, "2026-05")
    assert may is not None
    assert [line.kind for line in may[1]] == ["plan"]


async def test_a_final_invoice_refuses_every_change(sessions: Sessions) -> None:
    where = await shop(sessions, PAID)
    subscription = await subscribe_at(sessions, where, "Paid", at("2026-02-10T08:00"))
    await calls(sessions, subscription, at("2026-03-05T10:00"), 10)
    await close_period(sessions, "2026-03", now=at("2026-04-01T00:10"), fee_bps=FEE)
    async with sessions() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.status == "final"))
        assert invoice is not None
        with pytest.raises(FinalInvoiceChanged):
            await repository.replace_lines(session, invoice, [])
        invoice.total_minor = 1
        with pytest.raises(FinalInvoiceChanged):
            await session.commit()
        await session.rollback()
    async with sessions() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.status == "final"))
        assert invoice is not None
        assert invoice.total_minor == 3
        await session.delete(invoice)
        with pytest.raises(FinalInvoiceChanged):
            await session.commit()


async def test_plan_change_mid_month_gives_one_line_per_plan(sessions: Sessions) -> None:
    where = await shop(sessions, BASIC, PRO)
    subscription = await subscribe_at(sessions, where, "Basic", at("2026-02-10T08:00"))
    change = at("2026-03-11T00:00")  # 10 days of March on Basic, 21 on Pro
    await calls(sessions, subscription, at("2026-03-02T00:00"), 1500)
    await change_at(sessions, subscription, where.plans["Pro"], change)
    await calls(sessions, subscription, change, 2115)  # the first one at the change: Pro's
    await close_period(sessions, "2026-03", now=at("2026-04-01T00:10"), fee_bps=FEE)
    found = await invoice_with_lines(sessions, subscription, "2026-03")
    assert found is not None
    invoice, (basic, pro) = found
    assert (basic.plan_name, basic.segment_start, basic.segment_end) == (
        "Basic",
        at("2026-03-01"),
        change,
    )
    # 3,100 included a month: 10/31 of it is 1,000, 21/31 is 2,100.
    assert (basic.calls, basic.included, basic.billable, basic.amount_minor) == (
        1500,
        1000,
        500,
        50,
    )
    assert (pro.plan_name, pro.segment_start, pro.segment_end) == ("Pro", change, at("2026-04-01"))
    assert (pro.calls, pro.included, pro.billable) == (2115, 2100, 15)
    assert pro.amount_minor == 1  # 15 calls at 0.50 per 1,000: 0.75 rounds up
    assert invoice.total_minor == 51

    # April is all Pro: the whole allowance.
    await refresh_drafts(sessions, "2026-04", now=at("2026-04-02"), fee_bps=FEE)
    april = await invoice_with_lines(sessions, subscription, "2026-04")
    assert april is not None
    assert [(line.plan_name, line.included) for line in april[1]] == [("Pro", 3100)]


async def test_subscribing_and_cancelling_mid_month_prorate(sessions: Sessions) -> None:
    where = await shop(sessions, METERED)
    leaving = await subscribe_at(sessions, where, "Metered", at("2026-02-10T08:00"))
    await calls(sessions, leaving, at("2026-03-02T00:00"), 1600)
    await cancel_at(sessions, leaving, at("2026-03-16T12:00"))  # 15.5 of 31 days
    joining = await subscribe_at(sessions, where, "Metered", at("2026-03-16T12:00"))
    await calls(sessions, joining, at("2026-03-20T00:00"), 1549)

    await close_period(sessions, "2026-03", now=at("2026-04-01T00:10"), fee_bps=FEE)
    left = await invoice_with_lines(sessions, leaving, "2026-03")
    assert left is not None
    (line,) = left[1]
    assert (line.segment_end, line.included, line.billable, line.amount_minor) == (
        at("2026-03-16T12:00"),
        1550,
        50,
        10,
    )
    joined = await invoice_with_lines(sessions, joining, "2026-03")
    assert joined is not None
    (line,) = joined[1]
    assert (line.segment_start, line.included, line.billable) == (at("2026-03-16T12:00"), 1550, 0)
    assert joined[0].total_minor == 0

    # A cancelled subscription gets no April invoice (nothing came late).
    await refresh_drafts(sessions, "2026-04", now=at("2026-04-02"), fee_bps=FEE)
    assert await invoice_with_lines(sessions, leaving, "2026-04") is None
    assert await invoice_with_lines(sessions, joining, "2026-04") is not None


async def test_earnings_and_revenue_per_currency(sessions: Sessions) -> None:
    where = await shop(sessions, PAID, INCLUDED)
    other = await shop(sessions, PAID)  # another developer's API
    eur = await subscribe_at(sessions, where, "Paid", at("2026-02-10T08:00"))
    usd = await subscribe_at(sessions, where, "Included", at("2026-02-10T08:00"))
    elsewhere = await subscribe_at(sessions, other, "Paid", at("2026-02-10T08:00"))
    await calls(sessions, eur, at("2026-03-05T10:00"), 1234)  # 309 EUR, fee 62 (61.8)
    await calls(sessions, usd, at("2026-03-05T10:00"), 1500)  # 50 USD, fee 10
    await calls(sessions, elsewhere, at("2026-03-05T10:00"), 4000)  # 1000 EUR, fee 200
    await refresh_drafts(sessions, "2026-03", now=at("2026-03-20"), fee_bps=FEE)

    async with sessions() as session:
        drafts = await reports.earnings(session, where.owner_id, "2026-03", FEE)
    assert [(i.currency, i.draft_invoices) for i in drafts.items] == [("EUR", 1), ("USD", 1)]
    await close_period(sessions, "2026-03", now=at("2026-04-01T00:10"), fee_bps=FEE)
    async with sessions() as session:
        mine = await reports.earnings(session, where.owner_id, "2026-03", FEE)
        platform = await reports.revenue(session, "2026-03")
        empty = await reports.earnings(session, where.owner_id, "2026-02", FEE)
    rows = {(i.api_id, i.currency): i for i in mine.items}
    assert set(rows) == {(where.api_id, "EUR"), (where.api_id, "USD")}
    eur_row = rows[(where.api_id, "EUR")]
    assert (eur_row.gross_minor, eur_row.fee_minor, eur_row.net_minor) == (309, 62, 247)
    assert (eur_row.invoices, eur_row.draft_invoices, eur_row.api_name) == (1, 0, "Meter")
    usd_row = rows[(where.api_id, "USD")]
    assert (usd_row.gross_minor, usd_row.fee_minor, usd_row.net_minor) == (50, 10, 40)
    assert {t.currency: t.net_minor for t in mine.totals} == {"EUR": 247, "USD": 40}
    assert empty.items == []

    by_currency = {t.currency: t for t in platform.items}
    assert (by_currency["EUR"].gross_minor, by_currency["EUR"].fee_minor) == (1309, 262)
    assert (by_currency["EUR"].invoices, by_currency["USD"].fee_minor) == (2, 10)


async def test_the_job_closes_after_the_grace_and_catches_up(sessions: Sessions) -> None:
    where = await shop(sessions, PAID)
    consumer = await user(sessions, "consumer")
    subscription = await subscribe_at(
        sessions, where, "Paid", at("2026-01-10T08:00"), consumer_id=consumer
    )
    await calls(sessions, subscription, at("2026-01-12T00:00"), 100)
    await calls(sessions, subscription, at("2026-03-12T00:00"), 100)
    # January's draft was made, then the job stopped until the first minutes of April.
    await refresh_drafts(sessions, "2026-01", now=at("2026-01-20"), fee_bps=FEE)
    job = BillingJob(sessions, FEE, interval_seconds=60, grace_seconds=300)

    early = await job.tick(at("2026-04-01T00:02"))
    # January had a draft left open; February is the latest month past its grace.
    assert [(r.period, r.finalized) for r in early.closed] == [("2026-01", 1), ("2026-02", 1)]
    assert await invoice_with_lines(sessions, subscription, "2026-03") is None  # in its grace
    assert early.drafts == 1  # April's draft

    later = await job.tick(at("2026-04-01T00:06"))
    assert [(r.period, r.finalized) for r in later.closed] == [("2026-03", 1)]
    for period, total in (("2026-01", 25), ("2026-02", 0), ("2026-03", 25)):
        found = await invoice_with_lines(sessions, subscription, period)
        assert found is not None
        assert (found[0].status, found[0].total_minor) == ("final", total)
    again = await job.tick(at("2026-04-01T00:07"))
    assert [(r.period, r.finalized, r.already_final) for r in again.closed] == [("2026-03", 0, 1)]


Billed = tuple[str, int, int, list[tuple[Any, ...]]]


def _billed(found: tuple[Invoice, list[InvoiceLine]] | None) -> Billed:
    """What an invoice bills: its status, total, fee and lines (not row ids or times)."""
    assert found is not None
    invoice, lines = found
    return (
        invoice.status,
        invoice.total_minor,
        invoice.fee_minor,
        [
            (
                line.kind,
                line.adjusts_period,
                line.plan_name,
                line.segment_start,
                line.segment_end,
                line.calls,
                line.included,
                line.billable,
                line.amount_minor,
            )
            for line in lines
        ],
    )


async def test_purging_raw_executions_changes_no_invoice(sessions: Sessions) -> None:
    where = await shop(sessions, BASIC, PRO)
    subscription = await subscribe_at(sessions, where, "Basic", at("2026-02-10T08:00"))
    await calls(sessions, subscription, at("2026-03-01T00:30"), 1400)
    await change_at(sessions, subscription, where.plans["Pro"], at("2026-03-11T00:00"))
    await calls(sessions, subscription, at("2026-03-30T12:00"), 2200)
    await refresh_drafts(sessions, "2026-03", now=at("2026-03-31T00:00"), fee_bps=FEE)
    draft = _billed(await invoice_with_lines(sessions, subscription, "2026-03"))
    assert draft[1] == 40 + 5  # 400 beyond Basic's 1,000; 100 beyond Pro's 2,100

    # The retention purge deletes every raw execution of March before it is closed.
    assert await purge_raw(sessions, at("2026-04-01")) == 3600
    await refresh_drafts(sessions, "2026-03", now=at("2026-03-31T12:00"), fee_bps=FEE)
    assert _billed(await invoice_with_lines(sessions, subscription, "2026-03")) == draft
    await close_period(sessions, "2026-03", now=at("2026-04-01T00:10"), fee_bps=FEE)
    final = _billed(await invoice_with_lines(sessions, subscription, "2026-03"))
    assert final == ("final", *draft[1:])

    # Late calls of March, purged as well before April is refreshed: billed all the same.
    await calls(sessions, subscription, at("2026-03-31T23:59:59"), 30)
    await calls(sessions, subscription, at("2026-04-02T10:00"), 5)
    assert await purge_raw(sessions, at("2026-04-03")) == 35
    await refresh_drafts(sessions, "2026-04", now=at("2026-04-03"), fee_bps=FEE)
    april = _billed(await invoice_with_lines(sessions, subscription, "2026-04"))
    plan, adjustment = april[3]
    assert plan[5] == 5  # April's own calls
    assert adjustment[:2] == ("adjustment", "2026-03")
    assert (adjustment[5], adjustment[7], adjustment[8]) == (30, 30, 2)  # 1.5 rounds up


async def test_the_minute_of_a_plan_change_goes_to_the_new_plan(sessions: Sessions) -> None:
    where = await shop(sessions, BASIC, PRO)
    subscription = await subscribe_at(sessions, where, "Basic", at("2026-03-02T09:00:40"))
    await calls(sessions, subscription, at("2026-03-02T09:00:41"), 7)  # its first minute
    await calls(sessions, subscription, at("2026-03-11T00:00:05"), 10)  # before the change
    # A draft made within that minute, before the change, counts them on Basic.
    await refresh_drafts(sessions, "2026-03", now=at("2026-03-11T00:00:20"), fee_bps=FEE)
    draft = await invoice_with_lines(sessions, subscription, "2026-03")
    assert draft is not None
    assert [(line.plan_name, line.calls) for line in draft[1]] == [("Basic", 17)]
    await change_at(sessions, subscription, where.plans["Pro"], at("2026-03-11T00:00:30"))
    await calls(sessions, subscription, at("2026-03-11T00:00:40"), 20)
    # Once the plan changed, they are Pro's, and counted once.
    await refresh_drafts(sessions, "2026-03", now=at("2026-03-11T00:01"), fee_bps=FEE)
    draft = await invoice_with_lines(sessions, subscription, "2026-03")
    assert draft is not None
    assert [(line.plan_name, line.calls) for line in draft[1]] == [("Basic", 7), ("Pro", 30)]
    await calls(sessions, subscription, at("2026-03-20T12:00:01"), 4)  # before cancelling
    await cancel_at(sessions, subscription, at("2026-03-20T12:00:30"))
    await close_period(sessions, "2026-03", now=at("2026-04-01T00:10"), fee_bps=FEE)
    found = await invoice_with_lines(sessions, subscription, "2026-03")
    assert found is not None
    basic, pro = found[1]
    assert (basic.plan_name, basic.segment_end, basic.calls) == (
        "Basic",
        at("2026-03-11T00:00:30"),
        7,
    )
    assert (pro.plan_name, pro.segment_end, pro.calls) == ("Pro", at("2026-03-20T12:00:30"), 34)
