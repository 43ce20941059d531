"""Keyset pagination for admin lists: newest first, an opaque cursor per page.

A cursor is the (created_at, id) of the last row shown; the next page starts
strictly after it, so rows added meanwhile never shift or repeat a page the way
an offset would.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from shared.errors import Unprocessable

Cursor = tuple[datetime, str]
T = TypeVar("T")


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, row_id = raw.split("|", 1)
        parsed = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Unprocessable("This cursor is not one we gave out.", code="invalid_cursor") from exc
    if parsed.tzinfo is None:
        raise Unprocessable("This cursor is not one we gave out.", code="invalid_cursor")
    return parsed, row_id


def cut_page(rows: Sequence[T], limit: int) -> tuple[Sequence[T], str | None]:
    """A page from `limit + 1` rows whose first item has created_at and id: the rows to
    show, and the cursor of the next page (None when this is the last)."""
    page = rows[:limit]
    last: Any = page[-1][0] if len(rows) > limit else None  # type: ignore[index]
    return page, encode_cursor(last.created_at, last.id) if last else None
