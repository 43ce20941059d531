"""Per-subscription rate limit and quotas, exact across data-plane workers.

One Lua script decides each call in one Redis round trip (EVALSHA): a GCRA
rate limit with burst (the algorithm of redis-cell and Brandur's throttled),
then a daily and a monthly counter. It checks all three first and only when
all pass takes the token and counts the call, so a refused call consumes
nothing. The rate uses Redis' own clock (`TIME`), so workers with skewed
clocks share one bucket; the calendar windows (UTC days and months) come from
the `clock` given to the `Limiter` and are passed in as key names and TTLs.

Answers carry the IETF RateLimit fields in the structured-field (RFC 9651)
syntax of draft-ietf-httpapi-ratelimit-headers-08 and later, checked against
-11 of May 2026 (https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/):
§3 RateLimit-Policy is a List of String items with parameters q (quota) and
w (window, s); §4 RateLimit is a List of String items with parameters r
(remaining) and t (effective window, s):

    RateLimit-Policy: "burst";q=20;w=1, "daily";q=1000;w=86400
    RateLimit: "burst";r=19;t=1, "daily";r=958;t=40000

When Redis cannot be reached the limiter fails open (admits, warns at most
once per `warn_interval`) or closed (refuses with 503 `limits_unavailable`),
and goes back to normal by itself as soon as Redis answers again.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from gateway.dataplane.resp import KeptConnection
from shared.errors import ServiceUnavailable, TooManyRequests, VeilError
from shared.resp import pack

log = logging.getLogger("veil.dataplane.limits")

DAY_SECONDS = 86_400
# Counters outlive their window by this much: a worker whose clock lags a little
# behind still finds yesterday's counter instead of starting a fresh one.
KEY_MARGIN_SECONDS = 3_600
PROBLEM_BASE = "https://veil.dev/problems/"

# KEYS: rate bucket, day counter, month counter.
# ARGV: emission interval µs (0: no rate limit), tolerance µs (burst * interval),
#       daily quota (-1: none), monthly quota (-1: none), day key TTL s, month key TTL s.
# Returns {refused, ahead, day_used, month_used}: refused is a bit set (1 rate,
# 2 daily, 4 monthly); ahead is how far (whole ns) the bucket's theoretical
# arrival time lies ahead of now after this decision; the counters are their
# values after it. Redis >= 5 (effects replication: TIME may precede writes).
# Kept lean: Redis runs scripts one at a time, so its cost caps all workers.
# A number passed to redis.call is formatted with %.17g, so the bucket's time
# is stored exactly without string.format.
_SCRIPT = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local daily_quota = tonumber(ARGV[3])
local monthly_quota = tonumber(ARGV[4])
local refused = 0
local now, tat, new_tat = 0, 0, 0
if interval > 0 then
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
  tat = tonumber(redis.call('GET', KEYS[1])) or now
  if tat < now then tat = now end
  new_tat = tat + interval
  if new_tat - tolerance > now then refused = 1 end
end
local day_used = 0
if daily_quota >= 0 then
  day_used = tonumber(redis.call('GET', KEYS[2]) or 0)
  if day_used >= daily_quota then refused = refused + 2 end
end
local month_used = 0
if monthly_quota >= 0 then
  month_used = tonumber(redis.call('GET', KEYS[3]) or 0)
  if month_used >= monthly_quota then refused = refused + 4 end
end
if refused == 0 then
  if interval > 0 then
    tat = new_tat
    redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000) + 1)
  end
  if daily_quota >= 0 then
    day_used = redis.call('INCR', KEYS[2])
    if day_used == 1 then redis.call('EXPIRE', KEYS[2], ARGV[5]) end
  end
  if monthly_quota >= 0 then
    month_used = redis.call('INCR', KEYS[3])
    if month_used == 1 then redis.call('EXPIRE', KEYS[3], ARGV[6]) end
  end
end
return {refused, math.floor((tat - now) * 1000 + 0.5), day_used, month_used}
"""
_SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()
_SCRIPT_SHA_BYTES = _SCRIPT_SHA.encode()
_SCRIPT_LOAD = pack(b"SCRIPT", b"LOAD", _SCRIPT)

_RATE, _DAILY, _MONTHLY = 1, 2, 4
_POLICY_HEADER = b"ratelimit-policy"
_STATE_HEADER = b"ratelimit"


@dataclass(frozen=True)
class Policy:
    """A plan's limits; None means no limit of that kind."""

    rate_per_second: int | None
    burst: int | None  # None → equals rate_per_second; ignored without a rate
    daily_quota: int | None
    monthly_quota: int | None

    def __post_init__(self) -> None:
        for name in ("rate_per_second", "burst"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        for name in ("daily_quota", "monthly_quota"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, not {value}")

    @property
    def unlimited(self) -> bool:
        """Nothing to check: the caller skips Redis entirely."""
        return (self.rate_per_second, self.daily_quota, self.monthly_quota) == (None, None, None)

    @property
    def bucket(self) -> tuple[int, int] | None:
        """(rate per second, burst) of the rate limit, None without one."""
        if self.rate_per_second is None:
            return None
        return self.rate_per_second, self.burst or self.rate_per_second


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None  # None | "rate" | "daily" | "monthly" | "unavailable"
    retry_after: int | None  # whole seconds (ceil), for Retry-After
    headers: list[tuple[bytes, bytes]]  # RateLimit-Policy and RateLimit, lowercase names


@dataclass(frozen=True)
class Windows:
    """The UTC calendar day and month that an instant falls in."""

    day: str  # "20261231": part of the day counter's key
    month: str  # "202612"
    day_start: float  # epoch seconds
    day_end: float  # next midnight UTC
    month_end: float  # the 1st of next month, 00:00 UTC
    month_seconds: int  # length of this month: the monthly policy's window


def windows_at(now: float) -> Windows:
    moment = datetime.fromtimestamp(now, UTC)
    day_start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    days_in_month = calendar.monthrange(moment.year, moment.month)[1]
    month_start = day_start.replace(day=1)
    return Windows(
        day=day_start.strftime("%Y%m%d"),
        month=day_start.strftime("%Y%m"),
        day_start=day_start.timestamp(),
        day_end=(day_start + timedelta(days=1)).timestamp(),
        month_end=(month_start + timedelta(days=days_in_month)).timestamp(),
        month_seconds=days_in_month * DAY_SECONDS,
    )


def ceil_seconds(seconds: float) -> int:
    """Whole seconds for Retry-After and `t`: never rounds a wait down, never below 1."""
    return max(1, math.ceil(seconds - 1e-9))


def keys_for(prefix: str, subscription_id: str, windows: Windows) -> tuple[str, str, str]:
    """Rate bucket, day counter, month counter. The braces make the three keys one
    Redis Cluster hash slot, which a script touching all of them needs."""
    base = f"{prefix}:{{{subscription_id}}}"
    return f"{base}:rate", f"{base}:d:{windows.day}", f"{base}:m:{windows.month}"


@lru_cache(maxsize=4096)
def policy_header(policy: Policy, month_seconds: int) -> bytes:
    """RateLimit-Policy's value (draft-ietf-httpapi-ratelimit-headers §3)."""
    items = []
    if policy.bucket is not None:
        # A full bucket refills in burst / rate seconds. Rounded up, so that q / w
        # never advertises more than the sustained rate.
        rate, burst = policy.bucket
        items.append(f'"burst";q={burst};w={max(1, math.ceil(burst / rate))}')
    if policy.daily_quota is not None:
        items.append(f'"daily";q={policy.daily_quota};w={DAY_SECONDS}')
    if policy.monthly_quota is not None:
        items.append(f'"monthly";q={policy.monthly_quota};w={month_seconds}')
    return ", ".join(items).encode()


@dataclass(frozen=True)
class RateState:
    """Where a GCRA bucket stands after a decision, for headers and Retry-After."""

    available: int  # calls that would be admitted right now, one after another
    full_in: float  # seconds until the bucket is full again
    next_in: float  # seconds until one more call is admitted (0: now)


def rate_state(bucket: tuple[int, int], ahead_us: float) -> RateState:
    """`ahead_us`: how far the bucket's theoretical arrival time lies ahead of now."""
    rate, burst = bucket
    interval = 1e6 / rate
    tolerance = burst * interval
    ahead = max(0.0, ahead_us)
    # The small epsilon absorbs float error when 1e6 / rate is not a whole number.
    available = min(burst, max(0, math.floor((tolerance - ahead) / interval + 1e-4)))
    return RateState(
        available=available,
        full_in=ahead / 1e6,
        next_in=max(0.0, ahead + interval - tolerance) / 1e6,
    )


def state_header(
    policy: Policy,
    rate: RateState | None,
    day_used: int,
    month_used: int,
    now: float,
    windows: Windows,
) -> bytes:
    """RateLimit's value (draft-ietf-httpapi-ratelimit-headers §4).

    For the bucket, `t` is how long the `r` calls must last: until it is full
    again, or, when empty, until the next call is admitted (so it never ends
    after Retry-After, as §6 asks).
    """
    items = []
    if rate is not None:
        t = rate.full_in if rate.available else rate.next_in
        items.append(f'"burst";r={rate.available};t={math.ceil(t - 1e-9)}')
    if policy.daily_quota is not None:
        left = max(0, policy.daily_quota - day_used)
        items.append(f'"daily";r={left};t={ceil_seconds(windows.day_end - now)}')
    if policy.monthly_quota is not None:
        left = max(0, policy.monthly_quota - month_used)
        items.append(f'"monthly";r={left};t={ceil_seconds(windows.month_end - now)}')
    return ", ".join(items).encode()


def decide(
    policy: Policy,
    refused: int,
    rate: RateState | None,
    day_used: int,
    month_used: int,
    now: float,
    windows: Windows,
) -> Decision:
    """Turn the script's answer into a Decision (pure: the unit tests call it)."""
    headers = [
        (_POLICY_HEADER, policy_header(policy, windows.month_seconds)),
        (_STATE_HEADER, state_header(policy, rate, day_used, month_used, now, windows)),
    ]
    if not refused:
        return Decision(True, None, None, headers)
    # The call succeeds only once every exhausted limit has recovered: wait for the
    # longest. Name the quota when one is exhausted, the longer window first.
    waits = []
    if refused & _RATE and rate is not None:
        waits.append(rate.next_in)
    if refused & _DAILY:
        waits.append(windows.day_end - now)
    if refused & _MONTHLY:
        waits.append(windows.month_end - now)
    reason = "monthly" if refused & _MONTHLY else "daily" if refused & _DAILY else "rate"
    return Decision(False, reason, ceil_seconds(max(waits, default=1.0)), headers)


class ScriptBatcher:
    """Runs the limit script for every check that arrives while one round trip is out.

    A check waits for the next batch; a batch leaves at once when none is in
    flight (so an idle worker adds no delay) and otherwise as soon as the one in
    flight returns, all its checks in one pipeline. Each EVALSHA is still its own
    atomic decision: batching shares the round trip, not the decision. Under
    load a round trip per check cost several times the check itself; a batch
    costs a fraction of that per check, packed by hand on one kept connection
    (resp.py). Figures: docs/benchmarks.md.
    """

    def __init__(self, redis: Redis, timeout: float, max_batch: int = 256) -> None:
        self._timeout = timeout  # bounds a batch, so a hung Redis cannot stall the queue
        self._max_batch = max_batch
        self._queue: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._draining: asyncio.Task[None] | None = None
        self._connection = KeptConnection(redis)  # one batch at a time: one connection

    async def run(self, command: bytes) -> list[Any]:
        """`command`: one EVALSHA of the script, packed (`Limiter._command`)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((command, future))
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())
        return list(await future)

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let the checks of this loop iteration join
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._send(batch)
        finally:
            self._draining = None

    async def _send(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._pipeline([command for command, _ in batch])
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            replies = [exc] * len(batch)
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller gave up (timeout, cancelled)
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipeline(self, calls: list[bytes]) -> list[Any]:
        replies: list[Any] = await self._evalsha_all(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # first use, a restarted Redis, or SCRIPT FLUSH
            # On the kept connection too: a pooled one may still point at the Redis
            # that just restarted.
            (loaded,) = await self._connection.exchange(_SCRIPT_LOAD, 1)
            if isinstance(loaded, BaseException):
                raise loaded
            retried = await self._evalsha_all([calls[i] for i in missing])
            for i, reply in zip(missing, retried, strict=True):
                replies[i] = reply
        return replies

    async def _evalsha_all(self, calls: list[bytes]) -> list[Any]:
        return await self._connection.exchange(b"".join(calls), len(calls))

    async def close(self) -> None:
        await self._connection.close()


class Limiter:
    """Checks and counts one call against a subscription's policy.

    `timeout` bounds the wait for Redis; after a timeout (Redis hung rather than
    down) the limiter does not try again for `probe_interval` seconds, so a hung
    Redis costs one timeout per interval, not one per call. A refused connection
    fails fast and is retried on every call. The timeout is generous on purpose:
    a cold worker's first batch opens a connection; a false alarm would refuse or
    skip checks for a while. Checks share round trips (`ScriptBatcher`), so a
    worker holds one or two Redis connections for limits whatever its load.
    """

    def __init__(
        self,
        redis: Redis,
        fail_open: bool,
        clock: Callable[[], float] = time.time,
        key_prefix: str = "veil:rl",
        *,
        timeout: float = 2.0,
        probe_interval: float = 1.0,
        warn_interval: float = 30.0,
    ) -> None:
        self._redis = redis
        self._fail_open = fail_open
        self._clock = clock
        self._prefix = key_prefix
        self._timeout = timeout
        self._probe_interval = probe_interval
        self._warn_interval = warn_interval
        self._windows = windows_at(clock())
        self._skip_until = 0.0  # monotonic; Redis timed out, answer without it until then
        self._warned_at = -math.inf  # monotonic time of the last "unavailable" warning
        self._degraded = False
        self._batcher = ScriptBatcher(redis, timeout)
        # Packed EVALSHAs by (subscription, policy) for the current second: within a
        # second a subscription's command is the same bytes (the TTLs are whole
        # seconds), so a busy key packs its command once a second, not once a call.
        self._commands: dict[tuple[str, Policy], bytes] = {}
        self._commands_second = 0

    async def close(self) -> None:
        await self._batcher.close()

    async def check(self, subscription_id: str, policy: Policy) -> Decision:
        if policy.unlimited:
            return Decision(True, None, None, [])
        now = self._clock()
        windows = self._windows
        if not windows.day_start <= now < windows.day_end:
            windows = self._windows = windows_at(now)
        if self._skip_until and time.monotonic() < self._skip_until:
            return self._unavailable(policy, windows, None)
        second = int(now)
        if second != self._commands_second:
            self._commands.clear()
            self._commands_second = second
        command = self._commands.get((subscription_id, policy))
        if command is None:
            command = self._commands[subscription_id, policy] = self._command(
                subscription_id, policy, windows, second
            )
        try:
            reply = await self._batcher.run(command)
        except (RedisError, OSError) as exc:  # builtin TimeoutError is an OSError
            if isinstance(exc, TimeoutError):
                self._skip_until = time.monotonic() + self._probe_interval
            return self._unavailable(policy, windows, exc)
        if self._degraded:
            self._degraded = False
            self._skip_until = 0.0
            log.info("rate-limit store reachable again; limits enforced")
        refused, ahead_ns, day_used, month_used = reply
        bucket = policy.bucket
        rate = rate_state(bucket, ahead_ns / 1000) if bucket is not None else None
        return decide(policy, refused, rate, day_used, month_used, now, windows)

    def _command(
        self, subscription_id: str, policy: Policy, windows: Windows, second: int
    ) -> bytes:
        """The packed EVALSHA that checks and counts one call of this subscription
        during the whole second `second` (epoch seconds)."""
        keys = keys_for(self._prefix, subscription_id, windows)
        return pack(
            b"EVALSHA",
            _SCRIPT_SHA_BYTES,
            b"3",
            *keys,
            *_static_args(policy),
            math.ceil(windows.day_end - second) + KEY_MARGIN_SECONDS,
            math.ceil(windows.month_end - second) + KEY_MARGIN_SECONDS,
        )

    def _unavailable(self, policy: Policy, windows: Windows, exc: BaseException | None) -> Decision:
        self._degraded = True
        now = time.monotonic()
        if now - self._warned_at >= self._warn_interval:
            self._warned_at = now
            log.warning(
                "rate-limit store unavailable (%s); %s",
                repr(exc) if exc else "timed out; not retried yet",
                "admitting calls unchecked" if self._fail_open else "refusing calls",
            )
        # The state is unknown: announce the policy, not a made-up remainder.
        headers = [(_POLICY_HEADER, policy_header(policy, windows.month_seconds))]
        if self._fail_open:
            return Decision(True, "unavailable", None, headers)
        return Decision(False, "unavailable", ceil_seconds(self._probe_interval), headers)


@lru_cache(maxsize=4096)
def _static_args(policy: Policy) -> tuple[str, str, int, int]:
    """The script's ARGV that depend on the policy only; the TTLs follow per call."""
    interval = tolerance = 0.0
    if policy.bucket is not None:
        rate, burst = policy.bucket
        interval = 1e6 / rate
        tolerance = burst * interval
    daily = -1 if policy.daily_quota is None else policy.daily_quota
    monthly = -1 if policy.monthly_quota is None else policy.monthly_quota
    return repr(interval), repr(tolerance), daily, monthly


_REFUSALS = {
    "rate": ("rate_limited", "burst", "Too many calls with this key right now; retry in {} s."),
    "daily": (
        "daily_quota_exceeded",
        "daily",
        "This key has used its daily quota; it renews at 00:00 UTC, in {} s.",
    ),
    "monthly": (
        "monthly_quota_exceeded",
        "monthly",
        "This key has used its monthly quota; it renews on the 1st at 00:00 UTC, in {} s.",
    ),
}
_HEADER_NAMES = {_POLICY_HEADER: "RateLimit-Policy", _STATE_HEADER: "RateLimit"}


def refusal(decision: Decision) -> VeilError:
    """The error to answer a refused call with: 429 for a limit, 503 when unchecked."""
    if decision.allowed:
        raise ValueError("refusal() needs a refused decision")
    headers = {_HEADER_NAMES[name]: value.decode() for name, value in decision.headers}
    retry_after = decision.retry_after or 1
    headers["Retry-After"] = str(retry_after)
    if decision.reason == "unavailable":
        return ServiceUnavailable(
            "Usage limits cannot be checked right now; retry shortly.",
            code="limits_unavailable",
            headers=headers,
            details={"type": PROBLEM_BASE + "limits_unavailable"},
        )
    code, policy_name, message = _REFUSALS[decision.reason or "rate"]
    details: dict[str, Any] = {"type": PROBLEM_BASE + code, "violated-policies": [policy_name]}
    if decision.reason in ("daily", "monthly"):
        details["quota"] = decision.reason
    return TooManyRequests(message.format(retry_after), code=code, headers=headers, details=details)
