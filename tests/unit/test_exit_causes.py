"""Which deaths of a container are the app's own (they count towards crash-looping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from executor.docker_adapter import ContainerState, parse_engine_time, stopped_from_outside

ENGINE_UP = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def dead(code: int, oom: bool = False, finished: datetime | None = None) -> ContainerState:
    return ContainerState("exited", False, code, oom, "", finished)


@pytest.mark.parametrize(
    ("state", "outside"),
    [
        (dead(1, finished=ENGINE_UP + timedelta(minutes=5)), False),  # a crash
        (dead(137, oom=True), False),  # the kernel's OOM killer: the app's memory
        (dead(137), True),  # docker kill, an admin
        (dead(143), True),  # docker stop
        # The engine went down (dockerd restart, reboot): a graceful app exits 0.
        (dead(0, finished=ENGINE_UP - timedelta(seconds=3)), True),
        (dead(255, finished=ENGINE_UP - timedelta(minutes=1)), True),
        (dead(0, finished=ENGINE_UP + timedelta(minutes=1)), False),  # it just ended
    ],
)
def test_an_exit_is_the_app_s_unless_something_outside_stopped_it(
    state: ContainerState, outside: bool
) -> None:
    assert stopped_from_outside(state, ENGINE_UP) is outside


def test_an_unknown_engine_start_leaves_only_the_signals() -> None:
    assert stopped_from_outside(dead(0, finished=ENGINE_UP), None) is False
    assert stopped_from_outside(dead(143), None) is True


def test_engine_times_carry_nanoseconds_and_a_zero_for_never() -> None:
    assert parse_engine_time("2026-12-01T17:00:01.123456789Z") == datetime(
        2026, 12, 1, 17, 0, 1, 123456, tzinfo=UTC
    )
    assert parse_engine_time("0001-01-01T00:00:00Z") is None
    assert parse_engine_time("") is None
