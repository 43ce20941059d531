"""Background jobs that run every so often: retention, reconciliation, billing,
the executor's reconcile pass. One loop for all of them, so each behaves the same
way on failure and on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

_log = logging.getLogger("veil.periodic")


async def every(
    seconds: float,
    job: Callable[[], Awaitable[object]],
    name: str,
    *,
    log: logging.Logger = _log,
    retry_seconds: float | None = None,
    wake: Callable[[float], Awaitable[object]] | None = None,
) -> NoReturn:
    """Run `job` now and then `seconds` after each run ends, until cancelled.

    A failure is logged on `log` and does not end the loop: the next run comes
    `retry_seconds` later (default `seconds`). `wake(seconds)`, when given, is the
    wait after a run that went well instead of a plain sleep: it may return early
    when something happened that wants a run at once (a container died). It must
    not raise: an error there ends the loop.
    """
    retry = seconds if retry_seconds is None else retry_seconds
    while True:
        try:
            await job()
        except Exception:
            log.exception("%s failed; next try in %g s", name, retry)
            await asyncio.sleep(retry)
            continue
        if wake is None:
            await asyncio.sleep(seconds)
        else:
            await wake(seconds)
