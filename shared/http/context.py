"""Per-request context shared by middleware, error rendering and logging."""

from __future__ import annotations

from contextvars import ContextVar

current_request_id: ContextVar[str] = ContextVar("veil_request_id", default="-")
