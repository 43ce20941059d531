"""What the billing endpoints answer. Money is integer minor units (cents) throughout."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class LineOut(BaseModel):
    kind: str = Field(description="'plan': a plan segment; 'adjustment': late calls")
    adjusts_period: str | None = Field(description="the closed month an adjustment bills")
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


class InvoiceSummary(BaseModel):
    id: str
    subscription_id: str
    api_id: str
    api_name: str | None  # null once the API is deleted
    period: str
    status: str  # draft | final
    currency: str
    total_minor: int
    finalized_at: datetime | None
    updated_at: datetime


class InvoiceDetail(InvoiceSummary):
    lines: list[LineOut]


class InvoiceList(BaseModel):
    items: list[InvoiceSummary]


class UsageOut(BaseModel):
    """The current month so far, computed live from the calls stored."""

    subscription_id: str
    period: str
    period_start: datetime
    period_end: datetime
    currency: str | None  # null when nothing is billed this month
    calls: int = Field(description="billable calls this month (plan lines)")
    included: int
    billable: int
    amount_minor: int = Field(description="the invoice so far, adjustment lines included")
    lines: list[LineOut]
    calls_today: int  # stored counts, where live quota counters are missing
    calls_this_month: int


class Totals(BaseModel):
    currency: str
    invoices: int
    draft_invoices: int  # of the invoices; 0 once the month is closed
    gross_minor: int
    fee_minor: int
    net_minor: int


class ApiEarnings(Totals):
    api_id: str
    api_name: str | None


class EarningsOut(BaseModel):
    period: str
    fee_bps: int = Field(description="the platform fee for invoices computed from now on")
    items: list[ApiEarnings]
    totals: list[Totals]  # per currency


class RevenueOut(BaseModel):
    """The platform's revenue is `fee_minor`, per currency."""

    period: str
    items: list[Totals]


class CloseOut(BaseModel):
    period: str
    finalized: int
    already_final: int
    empty: int
