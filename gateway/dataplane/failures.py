"""Failed API keys per client address: a guesser is refused before the database.

Misses are cached (keys.py), so the same wrong key costs one query; a guesser
sends a new one each time, so each would cost a query. Every failure counts for
the caller's address in a window of a minute; past the limit, keys that are not
already cached (a live key someone holds is, and keeps working) are refused with
429 and Retry-After until the window ends, without a lookup.

Per data-plane worker, in memory: no Redis round trip on a path a flood makes
hot. With W workers an address gets up to W times the limit; that still bounds
the database to a few queries a second per address.
"""

from __future__ import annotations

import math
import time

from shared.errors import TooManyRequests

WINDOW_SECONDS = 60.0
_MAX_ADDRESSES = 100_000


class FailedKeys:
    def __init__(self, limit_per_minute: int) -> None:
        self._limit = limit_per_minute
        self._windows: dict[str, tuple[float, int]] = {}  # address → (window start, failures)

    def check(self, address: str) -> None:
        """429 while `address` is over its failures this window."""
        window = self._windows.get(address)
        if window is None or self._limit <= 0:
            return
        started, failures = window
        left = started + WINDOW_SECONDS - time.monotonic()
        if failures >= self._limit and left > 0:
            seconds = max(1, math.ceil(left))
            raise TooManyRequests(
                "Too many invalid API keys from your address; try again later.",
                code="too_many_failed_keys",
                headers={"Retry-After": str(seconds)},
            )

    def failed(self, address: str) -> None:
        now = time.monotonic()
        started, failures = self._windows.get(address, (now, 0))
        if now - started >= WINDOW_SECONDS:
            started, failures = now, 0
        if len(self._windows) >= _MAX_ADDRESSES and address not in self._windows:
            self._forget_old(now)
        self._windows[address] = (started, failures + 1)

    def _forget_old(self, now: float) -> None:
        stale = [a for a, (s, _) in self._windows.items() if now - s >= WINDOW_SECONDS]
        for address in stale or list(self._windows)[: _MAX_ADDRESSES // 10]:
            del self._windows[address]
