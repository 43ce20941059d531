"""Execution event ids: unique, UUID version 7, ordered by the millisecond they were made."""

from __future__ import annotations

import time
import uuid

from shared.events import new_event_id


def test_event_ids_are_unique_version_7_uuids() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert str(parsed) == ids[0]


def test_event_ids_follow_the_clock() -> None:
    before_ms = time.time_ns() // 1_000_000
    first = new_event_id()
    time.sleep(0.003)
    second = new_event_id()
    assert first < second  # as text too: the primary key's order is the time order
    assert uuid.UUID(first).int >> 80 >= before_ms
