"""The keyset cursor of every paginated list: newest first, an opaque token per page.

A cursor is the (time, id) of the last row shown; the next page starts strictly
after it, so rows added meanwhile never shift or repeat a page the way an offset
would. On the wire it is the unpadded URL-safe base64 of `<ISO 8601 time in UTC>|<id>`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from shared.errors import Unprocessable

Cursor = tuple[datetime, str]


def _not_ours() -> Unprocessable:
    return Unprocessable("This cursor is not one we gave out.", code="invalid_cursor")


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def encode_cursor(at: datetime, row_id: str) -> str:
    """The cursor after the row (`at`, `row_id`); a naive `at` is taken as UTC."""
    raw = f"{_aware(at).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Cursor:
    """(time in UTC, id) of a cursor `encode_cursor` gave out; anything else is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, row_id = raw.split("|", 1)
        parsed = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _not_ours() from exc
    if parsed.tzinfo is None:  # every cursor given out names its zone
        raise _not_ours()
    return parsed.astimezone(UTC), row_id
