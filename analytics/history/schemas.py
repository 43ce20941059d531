"""What the execution history answers (the gateway documents and checks the same shapes)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ExecutionOut(BaseModel):
    event_id: str
    request_id: str
    method: str
    path: str
    status_code: int
    latency_ms: float
    upstream_ms: float | None
    gateway_ms: float | None
    bytes_in: int
    bytes_out: int
    started_at: datetime
    version: int | None
    subscription_id: str | None
    key_id: str | None


class ExecutionPage(BaseModel):
    items: list[ExecutionOut]
    next_cursor: str | None  # pass as `cursor` for the next (older) page; None: no more
