"""Rate-limit checks per second from one asyncio process, against a plain PING round trip.

Run: `uv run python -m bench.limits [--seconds S] [--rounds R] [--concurrency N]`. Starts its own
redis-server on a free loopback port (stopped again by its pid at the end), then
measures, after a warm-up, in R interleaved rounds of S seconds each: PING one at a
time, PING with N in flight, `Limiter.check` one at a time, `Limiter.check` with N in
flight; it prints medians over the rounds, this process's CPU time per call, and
the time redis-server itself spends per PING and per EVALSHA (INFO commandstats). The policy
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
from dataclasses import dataclass, field

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


@dataclass
class Figures:
    rates: list[float] = field(default_factory=list)  # calls/s, one per round
    p50s: list[float] = field(default_factory=list)  # µs
    cpus: list[float] = field(default_factory=list)  # this process's CPU µs per call

    def add(self, rate: float, p50: float, cpu: float) -> None:
        self.rates.append(rate)
        self.p50s.append(p50)
        self.cpus.append(cpu)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


async def measure(
    call: Callable[[int], Awaitable[object]], seconds: float, concurrency: int
) -> tuple[float, float, float]:
    """Calls/s, median latency (µs) and CPU µs per call with `concurrency` callers."""
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

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return done / elapsed, statistics.median(latencies) * 1e6, cpu / done * 1e6


async def run(url: str, seconds: float, rounds: int, concurrency: int) -> None:
    redis = Redis.from_url(url)
    limiter = Limiter(redis, fail_open=False)

    async def ping(_: int) -> object:
        return await redis.ping()

    async def check(i: int) -> object:
        decision = await limiter.check(SUBSCRIPTIONS[i % len(SUBSCRIPTIONS)], POLICY)
        if not decision.allowed:
            raise RuntimeError(f"check refused: {decision}")
        return decision

    calls = {"PING": ping, "check": check}
    figures = {(name, n): Figures() for name in calls for n in (1, concurrency)}
    try:
        # Warm-up: connections opened, the script loaded.
        await measure(ping, 0.3, concurrency)
        await measure(check, 0.3, concurrency)
        await redis.config_resetstat()
        # Interleaved rounds, medians reported: this box is shared and noisy.
        for _ in range(rounds):
            for (name, n), figure in figures.items():
                figure.add(*await measure(calls[name], seconds, n))
        stats = await redis.info("commandstats")
        counters = await redis.mget(await redis.keys("*:d:*"))
        admitted = sum(int(value) for value in counters if value is not None)
    finally:
        await redis.aclose()

    print(
        f"one asyncio process, loopback redis-server, {rounds} interleaved rounds"
        f" of {seconds:g} s, medians"
    )
    print(f"{'':22}{'calls/s':>9}{'vs PING':>9}{'p50 µs':>9}{'CPU µs/call':>13}")
    for n in (1, concurrency):
        label = "sequential" if n == 1 else f"{n} in flight"
        ping_rate = figures["PING", n].rate
        for name in calls:
            figure = figures[name, n]
            print(
                f"{name + ', ' + label:22}{figure.rate:>9,.0f}{figure.rate / ping_rate:>9.2f}"
                f"{statistics.median(figure.p50s):>9,.0f}{statistics.median(figure.cpus):>13,.0f}"
            )
    for command in ("ping", "evalsha"):
        usec = stats.get(f"cmdstat_{command}", {}).get("usec_per_call")
        print(f"redis-server time per {command.upper()}: {usec} µs")
    print(f"checks counted by Redis (daily counters): {admitted:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="per round and figure")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with redis_server() as url:
        asyncio.run(run(url, args.seconds, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
