"""Throttling password guesses: per account and per client address, in Redis.

bcrypt alone brakes a guesser only by burning the gateway's CPU. Here every
failed login counts against the account (by its normalised email, whether or
not it exists: the answers never tell which) and against the caller's address,
within a window; past the free failures each further one locks that key for
twice as long as the one before (1 s, 2 s, 4 s ... up to the maximum). A locked
key answers 429 with Retry-After before any password is checked. A good login
clears the account's count (not the address's: one account of a guesser's
does not clear its record). Counts are shared by every gateway process. When
Redis cannot be reached, logins go on unthrottled (logged): bcrypt still holds.
"""

from __future__ import annotations

import hashlib
import logging
import math

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.errors import TooManyRequests
from shared.settings import GatewaySettings

log = logging.getLogger("veil.gateway.throttle")
_PREFIX = "veil:throttle:login"


class LoginThrottle:
    def __init__(self, redis: Redis, settings: GatewaySettings) -> None:
        self._redis = redis
        self._window = settings.login_failure_window_seconds
        self._base = settings.login_backoff_base_seconds
        self._max = settings.login_backoff_max_seconds
        self._free = {
            "account": settings.login_free_failures_per_account,
            "address": settings.login_free_failures_per_address,
        }

    def _keys(self, email: str, address: str) -> dict[str, str]:
        account = hashlib.sha256(email.encode()).hexdigest()[:32]  # no emails in Redis
        return {
            "account": f"{_PREFIX}:account:{account}",
            "address": f"{_PREFIX}:address:{address}",
        }

    async def check(self, email: str, address: str) -> None:
        """429 while the account or the address is locked."""
        keys = self._keys(email, address)
        try:
            waits = [await self._redis.pttl(f"{key}:locked") for key in keys.values()]
        except RedisError as exc:
            log.warning("login throttle unavailable (%s): not throttling", exc)
            return
        wait_ms = max(waits)
        if wait_ms > 0:
            seconds = math.ceil(wait_ms / 1000)
            raise TooManyRequests(
                f"Too many failed sign-ins; try again in {seconds} s.",
                code="too_many_login_attempts",
                headers={"Retry-After": str(seconds)},
            )

    async def failed(self, email: str, address: str) -> None:
        try:
            for kind, key in self._keys(email, address).items():
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, self._window, nx=True)
                    count, _ = await pipe.execute()
                over = int(count) - self._free[kind]
                if over > 0:
                    lock = min(self._base * 2 ** (over - 1), self._max)
                    await self._redis.set(f"{key}:locked", b"1", px=max(1, int(lock * 1000)))
        except RedisError as exc:
            log.warning("login throttle unavailable (%s): failure not counted", exc)

    async def succeeded(self, email: str, address: str) -> None:
        key = self._keys(email, address)["account"]
        try:
            await self._redis.delete(key, f"{key}:locked")
        except RedisError as exc:
            log.warning("login throttle unavailable (%s)", exc)
