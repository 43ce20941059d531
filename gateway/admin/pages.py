"""Keyset pagination for admin lists: newest first, a cursor (`shared.pagination`) per page
made of the (created_at, id) of the last row shown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from shared.pagination import Cursor, decode_cursor, encode_cursor

__all__ = ["Cursor", "cut_page", "decode_cursor"]

T = TypeVar("T")


def cut_page(rows: Sequence[T], limit: int) -> tuple[Sequence[T], str | None]:
    """A page from `limit + 1` rows whose first item has created_at and id: the rows to
    show, and the cursor of the next page (None when this is the last)."""
    page = rows[:limit]
    last: Any = page[-1][0] if len(rows) > limit else None  # type: ignore[index]
    return page, encode_cursor(last.created_at, last.id) if last else None
