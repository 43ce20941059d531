"""Rate-limit checks per second from one asyncio process, against a plain PING round trip.

Run: `uv run python -m bench.limits [--seconds S] [--concurrency N]`. Starts its own
redis-server on a free loopback port (stopped again by its pid at the end), then
measures, each for S seconds after a warm-up: PING one at a time, PING with N in
flight, `Limiter.check` one at a time, `Limiter.check` with N in flight. The policy
has all three limits (rate, daily, monthly) set high enough that every check is
admitted, spread over 1000 subscriptions, so each check runs the whole script.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from redis.asyncio import Redis

from gateway.dataplane.limits import Limiter, Policy

POLICY = Policy(rate_per_second=1_000_000, burst=None, daily_quota=10**9, monthly_quota=10**10)
SUBSCRIPTIONS = [f"bench-sub-{i}" for i in range(1000)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="veil-bench-redis-")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir]
    process = subprocess.Popen(
        [*argv, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


async def measure(
    call: Callable[[int], Awaitable[object]], seconds: float, concurrency: int
) -> tuple[float, float]:
    """Calls per second and median latency (µs) with `concurrency` callers in a loop."""
    done = 0
    latencies: list[float] = []
    until = time.perf_counter() + seconds

    async def caller(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < until:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)
            done += 1
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return done / elapsed, statistics.median(latencies) * 1e6


async def run(url: str, seconds: float, concurrency: int) -> None:
    redis = Redis.from_url(url)
    limiter = Limiter(redis, fail_open=False)

    async def ping(_: int) -> object:
        return await redis.ping()

    async def check(i: int) -> object:
        decision = await limiter.check(SUBSCRIPTIONS[i % len(SUBSCRIPTIONS)], POLICY)
        if not decision.allowed:
            raise RuntimeError(f"check refused: {decision}")
        return decision

    try:
        # Warm-up: connections opened, the script loaded.
        await measure(ping, 0.3, concurrency)
        await measure(check, 0.3, concurrency)
        results = {}
        for name, call in (("PING", ping), ("check", check)):
            for n in (1, concurrency):
                results[name, n] = await measure(call, seconds, n)
        counters = await redis.mget(await redis.keys("*:d:*"))
        admitted = sum(int(value) for value in counters if value is not None)
    finally:
        await redis.aclose()

    print(f"one asyncio process, loopback redis-server, {seconds:g} s per figure")
    print(f"{'':24}{'calls/s':>10}{'p50 µs':>10}{'vs PING':>10}")
    for n in (1, concurrency):
        label = "sequential" if n == 1 else f"{n} in flight"
        ping_rate, ping_p50 = results["PING", n]
        check_rate, check_p50 = results["check", n]
        print(f"{'PING, ' + label:24}{ping_rate:>10,.0f}{ping_p50:>10,.0f}{'1.00':>10}")
        ratio = check_rate / ping_rate
        print(f"{'check, ' + label:24}{check_rate:>10,.0f}{check_p50:>10,.0f}{ratio:>10.2f}")
    print(f"checks counted by Redis (daily counters): {admitted:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with redis_server() as url:
        asyncio.run(run(url, args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
