"""The one keyset cursor codec (shared.pagination), as the admin lists and the execution
history both give it out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from analytics.history import service as history
from gateway.admin import pages
from shared.errors import Unprocessable
from shared.pagination import decode_cursor, encode_cursor

AT = datetime(2026, 3, 1, 12, 30, microsecond=123, tzinfo=UTC)
# What both former codecs gave out for (AT, "e-1"): cursors in clients' hands keep working.
GIVEN_OUT = "MjAyNi0wMy0wMVQxMjozMDowMC4wMDAxMjMrMDA6MDB8ZS0x"


def test_the_wire_format_is_unchanged() -> None:
    assert encode_cursor(AT, "e-1") == GIVEN_OUT
    assert decode_cursor(GIVEN_OUT) == (AT, "e-1")


def test_a_cursor_round_trips_in_utc() -> None:
    assert decode_cursor(encode_cursor(AT, "row|with|bars")) == (AT, "row|with|bars")
    elsewhere = AT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert encode_cursor(elsewhere, "e-1") == GIVEN_OUT
    assert encode_cursor(AT.replace(tzinfo=None), "e-1") == GIVEN_OUT  # naive: UTC
    at, _ = decode_cursor(encode_cursor(AT, "e-1"))
    assert at.tzinfo is UTC


@pytest.mark.parametrize(
    "bad",
    [
        "not a cursor",
        "!!",
        "",
        "MjAyNi0wMy0wMVQxMjozMDowMCswMDowMA",  # a time and no id
        "MjAyNi0wMy0wMVQxMjozMDowMHxlLTE",  # a time without its zone
        "bm90IGEgdGltZXxlLTE",  # "not a time|e-1"
        "_w",  # not UTF-8
    ],
)
def test_a_cursor_we_did_not_give_out_is_a_422(bad: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        decode_cursor(bad)
    assert caught.value.code == "invalid_cursor"
    assert caught.value.status == 422


def test_admin_lists_and_execution_history_share_it() -> None:
    assert pages.decode_cursor is history.decode_cursor is decode_cursor
    assert history.encode_cursor is encode_cursor
