"""shared/periodic.py: the one loop behind every periodic job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from shared.periodic import every

LOGGER = logging.getLogger("tests.periodic")


class Runs:
    """A job that records when it ran, failing its first `failures` runs."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.times: list[float] = []
        self.ran: asyncio.Queue[int] = asyncio.Queue()

    async def __call__(self) -> None:
        self.times.append(asyncio.get_running_loop().time())
        self.ran.put_nowait(len(self.times))
        if len(self.times) <= self.failures:
            raise RuntimeError(f"run {len(self.times)} failed")

    async def next(self, within: float = 5.0) -> int:
        return await asyncio.wait_for(self.ran.get(), within)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _start(
    job: Callable[[], Awaitable[object]],
    seconds: float,
    retry_seconds: float | None = None,
    wake: Callable[[float], Awaitable[object]] | None = None,
) -> asyncio.Task[None]:
    loop = every(seconds, job, "test job", log=LOGGER, retry_seconds=retry_seconds, wake=wake)
    return asyncio.create_task(loop)


async def test_runs_at_once_then_every_interval() -> None:
    job = Runs()
    task = _start(job, 0.05)
    for expected in (1, 2, 3):
        assert await job.next() == expected
    await _stop(task)
    gaps = [later - earlier for earlier, later in zip(job.times, job.times[1:], strict=False)]
    assert all(gap >= 0.045 for gap in gaps), gaps


async def test_a_failure_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = Runs(failures=2)
    with caplog.at_level(logging.ERROR, logger=LOGGER.name):
        # Failures come back after retry_seconds, not after the (long) interval.
        task = _start(job, 60, retry_seconds=0.01)
        for expected in (1, 2, 3):
            assert await job.next() == expected
        await _stop(task)
    failed = [r for r in caplog.records if r.name == LOGGER.name]
    assert [r.getMessage() for r in failed] == ["test job failed; next try in 0.01 s"] * 2
    assert all(r.exc_info is not None for r in failed)


async def test_cancellation_stops_the_loop_even_mid_run() -> None:
    started = asyncio.Event()
    finished = False

    async def slow() -> None:
        nonlocal finished
        started.set()
        await asyncio.sleep(60)
        finished = True

    task = _start(slow, 0.01)
    await asyncio.wait_for(started.wait(), 5)
    await _stop(task)  # not taken for a failure of the job: the loop ends
    assert task.cancelled()
    assert not finished


async def test_cancellation_between_runs_stops_it() -> None:
    job = Runs()
    task = _start(job, 60)
    assert await job.next() == 1
    await _stop(task)
    assert job.ran.empty()


async def test_wake_up_runs_the_job_early() -> None:
    job = Runs()
    changed = asyncio.Event()
    waits: list[float] = []

    async def until_change(within: float) -> None:
        waits.append(within)
        try:
            await asyncio.wait_for(changed.wait(), within)
        except TimeoutError:
            return
        changed.clear()

    task = _start(job, 60, wake=until_change)
    assert await job.next() == 1
    changed.set()
    assert await job.next() == 2  # at once, not a minute later
    await _stop(task)
    assert waits == [60, 60]


async def test_after_a_failure_the_retry_wait_replaces_the_wake_up() -> None:
    job = Runs(failures=1)
    waits: list[float] = []

    async def never(within: float) -> None:
        waits.append(within)
        await asyncio.sleep(within)

    task = _start(job, 60, retry_seconds=0.01, wake=never)
    assert await job.next() == 1  # fails
    assert await job.next() == 2  # 0.01 s later, without waiting for a change
    await _stop(task)
    assert waits == [60]
