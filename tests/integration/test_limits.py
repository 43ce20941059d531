"""gateway.dataplane.limits against real redis-servers: exact across workers, calendar
windows, nothing consumed on refusal, Redis down/hung/restarted/flushed."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from gateway.dataplane.limits import Decision, Limiter, Policy, keys_for, refusal, windows_at
from shared.errors import ServiceUnavailable
from tests.services import free_port

LOGGER = "veil.dataplane.limits"


class Clock:
    """A settable wall clock for the calendar windows (the rate uses Redis' own)."""

    def __init__(self, iso: str) -> None:
        self.set(iso)

    def set(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def fields(decision: Decision) -> dict[str, dict[str, int]]:
    """The RateLimit field as {policy: {param: value}}."""
    value = dict(decision.headers)[b"ratelimit"].decode()
    out: dict[str, dict[str, int]] = {}
    for item in value.split(", "):
        name, *params = item.split(";")
        out[name.strip('"')] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return out


async def counter(redis: Redis, key: str) -> int:
    value = await redis.get(key)
    return int(value) if value is not None else 0


class RedisProcess:
    """A private redis-server that a test may stop, freeze and start again on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = tempfile.mkdtemp(prefix="veil-test-limits-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
        argv = [binary, "--dir", self.workdir]
        for name, value in options.items():
            argv += [f"--{name}", value]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "redis-server exited at start-up"
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
async def second_redis(redis_url: str) -> AsyncIterator[Redis]:
    """Another client of the shared test server: a second worker's connection pool."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_burst_is_admitted_then_refused(redis: Redis) -> None:
    limiter = Limiter(redis, fail_open=False)
    policy = Policy(rate_per_second=20, burst=20, daily_quota=None, monthly_quota=None)
    started = time.perf_counter()
    decisions = [await limiter.check("sub-burst", policy) for _ in range(21)]
    elapsed = time.perf_counter() - started
    admitted = [d.allowed for d in decisions]
    assert admitted[:20] == [True] * 20
    if elapsed < 0.045:  # a new token arrives every 50 ms
        assert fields(decisions[19])["burst"]["r"] == 0
        last = decisions[20]
        assert (last.allowed, last.reason, last.retry_after) == (False, "rate", 1)
        error = refusal(last)
        assert (error.status, error.code, error.headers["Retry-After"]) == (
            429,
            "rate_limited",
            "1",
        )
    assert sum(admitted) <= 20 + int(elapsed * 20) + 1


async def bucket_time_us(redis: Redis, subscription_id: str) -> float:
    """The theoretical arrival time (µs, Redis' own clock) of a subscription's rate
    bucket, as the limit script stored it."""
    stored = await redis.get(keys_for("veil:rl", subscription_id, windows_at(time.time()))[0])
    assert stored is not None, "the bucket expired: the load stalled for a whole burst"
    return float(stored)


async def test_two_workers_share_one_rate(redis: Redis, second_redis: Redis) -> None:
    """Two limiters on two connection pools, one with a clock 3 s off, under continuous load.

    Counted in Redis' own time, not the test's: the first call sets the shared bucket's
    arrival time to Redis' `now` plus one interval, and each admitted call moves it by
    exactly one interval, a refused one not at all. The load runs until a number of
    calls is admitted, not for a wall-clock time, so a busy machine (stalls under the
    burst's 1 s) makes the test take longer, never fail."""
    policy = Policy(rate_per_second=20, burst=20, daily_quota=None, monthly_quota=None)
    interval_us = 1_000_000 / 20
    workers = [
        Limiter(redis, fail_open=False),
        Limiter(second_redis, fail_open=False, clock=lambda: time.time() + 3.0),
    ]
    assert (await workers[0].check("sub-shared", policy)).allowed
    first_us = await bucket_time_us(redis, "sub-shared") - interval_us  # Redis' now then
    admitted = [1, 0]
    checks = [1, 0]
    give_up = time.perf_counter() + 30

    async def load(index: int) -> None:
        while sum(admitted) < 50 and time.perf_counter() < give_up:
            decision = await workers[index].check("sub-shared", policy)
            admitted[index] += decision.allowed
            checks[index] += 1

    await asyncio.gather(*(load(i % 2) for i in range(8)))
    moved_us = await bucket_time_us(redis, "sub-shared") - first_us
    now_s, now_us = await redis.time()
    total = sum(admitted)
    assert total >= 50, (admitted, checks)
    assert total == round(moved_us / interval_us), (total, moved_us, checks)
    # No faster than the rate: the bucket is at most its burst ahead of Redis' clock.
    assert first_us + moved_us - (now_s * 1_000_000 + now_us) <= 20 * interval_us
    assert all(admitted), admitted  # both workers took part
    assert sum(checks) > 4 * total  # the load really exceeded the limit


async def test_daily_quota_renews_at_utc_midnight(redis: Redis) -> None:
    clock = Clock("2026-03-10T18:00:00.25")
    limiter = Limiter(redis, fail_open=False, clock=clock)
    policy = Policy(rate_per_second=None, burst=None, daily_quota=5, monthly_quota=None)
    for left in range(4, -1, -1):
        decision = await limiter.check("sub-daily", policy)
        assert decision.allowed
        assert fields(decision) == {"daily": {"r": left, "t": 21_600}}

    day_key = keys_for("veil:rl", "sub-daily", windows_at(clock()))[1]
    for _ in range(3):
        refused = await limiter.check("sub-daily", policy)
        assert (refused.allowed, refused.reason, refused.retry_after) == (False, "daily", 21_600)
    assert await counter(redis, day_key) == 5  # refusals count nothing
    ttl = await redis.ttl(day_key)
    assert 21_600 < ttl <= 21_600 + 3_600  # gone an hour after its day ends

    error = refusal(refused)
    assert (error.status, error.code) == (429, "daily_quota_exceeded")
    assert error.details["quota"] == "daily"
    assert error.headers["Retry-After"] == "21600"
    assert error.headers["RateLimit-Policy"] == '"daily";q=5;w=86400'

    clock.set("2026-03-10T23:59:59.5")
    assert (await limiter.check("sub-daily", policy)).retry_after == 1
    clock.set("2026-03-11T00:00:00")
    decision = await limiter.check("sub-daily", policy)
    assert decision.allowed
    assert fields(decision) == {"daily": {"r": 4, "t": 86_400}}


async def test_monthly_quota_crosses_a_year_boundary(redis: Redis) -> None:
    clock = Clock("2026-12-31T23:59:59.9")
    limiter = Limiter(redis, fail_open=False, clock=clock)
    policy = Policy(rate_per_second=None, burst=None, daily_quota=100, monthly_quota=3)
    for _ in range(3):
        assert (await limiter.check("sub-monthly", policy)).allowed
    refused = await limiter.check("sub-monthly", policy)
    assert (refused.allowed, refused.reason, refused.retry_after) == (False, "monthly", 1)
    assert fields(refused) == {"daily": {"r": 97, "t": 1}, "monthly": {"r": 0, "t": 1}}
    assert dict(refused.headers)[b"ratelimit-policy"] == (
        b'"daily";q=100;w=86400, "monthly";q=3;w=2678400'
    )
    assert refusal(refused).code == "monthly_quota_exceeded"

    clock.set("2027-01-01T00:00:00")
    decision = await limiter.check("sub-monthly", policy)
    assert decision.allowed
    assert fields(decision) == {
        "daily": {"r": 99, "t": 86_400},
        "monthly": {"r": 2, "t": 31 * 86_400},
    }
    _, day_key, month_key = keys_for("veil:rl", "sub-monthly", windows_at(clock()))
    assert month_key.endswith(":m:202701")
    assert await counter(redis, day_key) == await counter(redis, month_key) == 1


async def test_a_refused_call_consumes_nothing(redis: Redis) -> None:
    clock = Clock("2026-05-05T12:00:00")
    limiter = Limiter(redis, fail_open=False, clock=clock)
    rate_key, day_key, month_key = keys_for("veil:rl", "sub-atomic", windows_at(clock()))

    # Refused by the rate: the quotas are not counted.
    policy = Policy(rate_per_second=1, burst=1, daily_quota=10, monthly_quota=10)
    assert (await limiter.check("sub-atomic", policy)).allowed
    refused = await limiter.check("sub-atomic", policy)
    assert (refused.reason, refused.retry_after) == ("rate", 1)
    assert fields(refused)["daily"]["r"] == 9
    assert await counter(redis, day_key) == await counter(redis, month_key) == 1

    # Refused by a quota: the bucket keeps its token.
    await redis.delete(rate_key)
    policy = Policy(rate_per_second=1, burst=5, daily_quota=2, monthly_quota=10)
    assert (await limiter.check("sub-atomic", policy)).allowed
    bucket = await redis.get(rate_key)
    refused = await limiter.check("sub-atomic", policy)
    assert refused.reason == "daily"
    assert await redis.get(rate_key) == bucket
    assert fields(refused)["burst"]["r"] >= 4
    assert await counter(redis, day_key) == 2


async def test_concurrent_checks_never_exceed_a_quota(redis: Redis, second_redis: Redis) -> None:
    clock = Clock("2026-05-05T12:00:00")
    workers = [Limiter(client, fail_open=False, clock=clock) for client in (redis, second_redis)]
    policy = Policy(rate_per_second=None, burst=None, daily_quota=50, monthly_quota=1000)
    decisions = await asyncio.gather(
        *(workers[i % 2].check("sub-race", policy) for i in range(200))
    )
    assert sum(d.allowed for d in decisions) == 50
    assert {d.reason for d in decisions if not d.allowed} == {"daily"}
    _, day_key, month_key = keys_for("veil:rl", "sub-race", windows_at(clock()))
    assert await counter(redis, day_key) == await counter(redis, month_key) == 50
    remaining = sorted(fields(d)["daily"]["r"] for d in decisions if d.allowed)
    assert remaining == list(range(50))  # each admitted call saw its own count


async def test_more_checks_at_once_than_the_pool_has_connections(redis: Redis) -> None:
    """redis-py's pool refuses a 101st connection; a burst must queue, not go unchecked."""
    assert redis.connection_pool.max_connections < 300
    limiter = Limiter(redis, fail_open=True)
    policy = Policy(rate_per_second=None, burst=None, daily_quota=120, monthly_quota=None)
    decisions = await asyncio.gather(*(limiter.check("sub-burst", policy) for _ in range(300)))
    assert sum(d.allowed for d in decisions) == 120
    assert {d.reason for d in decisions} == {None, "daily"}


async def test_headers_on_allowed_and_refused_calls(redis: Redis) -> None:
    clock = Clock("2026-02-14T00:00:00")  # February 2026: 28 days
    limiter = Limiter(redis, fail_open=False, clock=clock)
    policy = Policy(rate_per_second=1, burst=3, daily_quota=4, monthly_quota=100)
    seen = [await limiter.check("sub-headers", policy) for _ in range(4)]
    for decision in seen:
        assert dict(decision.headers)[b"ratelimit-policy"] == (
            b'"burst";q=3;w=3, "daily";q=4;w=86400, "monthly";q=100;w=2419200'
        )
    assert [d.allowed for d in seen] == [True, True, True, False]
    assert [fields(d)["burst"]["r"] for d in seen] == [2, 1, 0, 0]
    assert [fields(d)["daily"]["r"] for d in seen] == [3, 2, 1, 1]
    assert [fields(d)["monthly"]["r"] for d in seen] == [99, 98, 97, 97]
    assert fields(seen[0])["burst"]["t"] == 1  # full again in 1 s
    assert fields(seen[3])["burst"]["t"] == 1  # the next call in 1 s
    assert fields(seen[3])["monthly"]["t"] == 15 * 86_400  # to March 1st
    assert seen[3].retry_after == 1


async def test_unlimited_policy_needs_no_redis() -> None:
    policy = Policy(rate_per_second=None, burst=None, daily_quota=None, monthly_quota=None)
    assert policy.unlimited
    nowhere = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        decision = await Limiter(nowhere, fail_open=False).check("sub", policy)
    finally:
        await nowhere.aclose()
    assert decision == Decision(True, None, None, [])


@pytest.mark.parametrize("fail_open", [True, False])
async def test_redis_unreachable(fail_open: bool, caplog: pytest.LogCaptureFixture) -> None:
    nowhere = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    limiter = Limiter(nowhere, fail_open=fail_open)
    policy = Policy(rate_per_second=10, burst=None, daily_quota=100, monthly_quota=None)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            decisions = [await limiter.check("sub-down", policy) for _ in range(5)]
    finally:
        await nowhere.aclose()
    assert {d.reason for d in decisions} == {"unavailable"}
    assert {d.allowed for d in decisions} == {fail_open}
    # The state is unknown: the policy is announced, no remainder is made up.
    assert dict(decisions[0].headers) == {
        b"ratelimit-policy": b'"burst";q=10;w=1, "daily";q=100;w=86400'
    }
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1  # at most one per warn_interval
    assert "unavailable" in warnings[0].getMessage()
    if not fail_open:
        error = refusal(decisions[0])
        assert isinstance(error, ServiceUnavailable)
        assert (error.status, error.code) == (503, "limits_unavailable")


async def test_recovers_when_redis_comes_back(
    private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = Redis.from_url(private_redis.url)
    limiter = Limiter(client, fail_open=False)
    policy = Policy(rate_per_second=100, burst=None, daily_quota=1000, monthly_quota=None)
    try:
        assert (await limiter.check("sub-restart", policy)).allowed
        private_redis.stop()
        down = await limiter.check("sub-restart", policy)
        assert (down.allowed, down.reason) == (False, "unavailable")
        private_redis.start()  # same port, empty, and without the script: NOSCRIPT
        with caplog.at_level(logging.INFO, logger=LOGGER):
            back = await limiter.check("sub-restart", policy)
        assert (back.allowed, back.reason) == (True, None)
        assert fields(back)["daily"]["r"] == 999  # the old counter died with the server
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()


async def test_hung_redis_costs_one_timeout_per_probe_interval(
    private_redis: RedisProcess,
) -> None:
    client = Redis.from_url(private_redis.url)
    limiter = Limiter(client, fail_open=True, timeout=0.2, probe_interval=0.5)
    policy = Policy(rate_per_second=100, burst=None, daily_quota=None, monthly_quota=None)
    try:
        assert (await limiter.check("sub-hung", policy)).reason is None
        private_redis.signal(signal.SIGSTOP)
        started = time.perf_counter()
        first = await limiter.check("sub-hung", policy)
        assert (first.allowed, first.reason) == (True, "unavailable")
        assert 0.15 < time.perf_counter() - started < 1.0
        started = time.perf_counter()
        for _ in range(20):  # within the probe interval: Redis is not asked
            assert (await limiter.check("sub-hung", policy)).reason == "unavailable"
        assert time.perf_counter() - started < 0.1
        private_redis.signal(signal.SIGCONT)
        await asyncio.sleep(0.6)
        back = await limiter.check("sub-hung", policy)
        assert (back.allowed, back.reason) == (True, None)
    finally:
        private_redis.signal(signal.SIGCONT)
        await client.aclose()


async def test_script_flush_is_survived(redis: Redis) -> None:
    limiter = Limiter(redis, fail_open=False)
    policy = Policy(rate_per_second=None, burst=None, daily_quota=10, monthly_quota=None)
    assert (await limiter.check("sub-flush", policy)).allowed
    await redis.script_flush()
    decision = await limiter.check("sub-flush", policy)
    assert (decision.allowed, decision.reason) == (True, None)
    assert fields(decision)["daily"]["r"] == 8
