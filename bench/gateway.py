"""Data-plane throughput and latency next to nginx and Caddy, one upstream, one machine.

Run: `uv run python -m bench.gateway [--duration S] [--rounds N] [--rate R] [--connections N]`
(`make bench-gateway` installs nginx, caddy and wrk first: `scripts/setup.sh --with-bench`).

Starts the whole platform like the e2e tests (testkit/platform.py: free loopback ports,
temp data dir, its own instance label, the data plane with as many workers as `make run`
gives it), deploys the Go server example (runtimes/go/examples/server: a static net/http
binary, the fastest upstream among the examples, so that the upstream is not what is
measured) with the maximum CPU an API may have, and reaches that one container five ways:

  direct      its IP:8080 on the veil-functions bridge
  data plane  http://127.0.0.1:<port>/<slug>/hello, with the credential from `credential()`
  bare plane  the data plane's server and upstream client with nothing between
              (bench/bare_proxy.py, same workers and flags): the floor under the data
              plane on this box, before routing, keys, limits and events
  nginx       started here from a generated config (temp dir, free loopback port): a plain
              reverse proxy, `upstream { keepalive 64; }`, worker_processes = cores
  Caddy       likewise: `reverse_proxy` with its defaults (it keeps upstream connections)

Then, each bounded in time:

1. throughput: `wrk -t1 -c50 --latency` (after a warm-up), every target in turn, --rounds
   times; the median round per target: requests/s, p50, p99, and the ratios; and CPU time
   (user + system) per request during each target's own rounds, steadier than req/s on a
   shared box: the proxy's processes (the data plane's server and workers, nginx's master
   and workers, Caddy), for the data plane also what each call costs elsewhere (the
   analytics service that ingests its event, the platform's Redis), and the upstream
   container (its cgroup's cpuacct.usage, cgroup v1); a figure that cannot be read
   (a process gone or unreadable) prints as "—";
2. added latency at a fixed --rate (1,000 req/s): an open-loop generator (`open_loop`:
   requests leave on a fixed schedule whatever the answers do, and each latency is
   measured from its scheduled send time, so a stall is not hidden by coordinated
   omission), direct then through the data plane; p50/p99 of each and the difference
   (when the data plane cannot take twice that rate, again at half its throughput, for
   reference: past its capacity the latency is queueing, not the proxy);
3. --connections (10,000) connections held through the data plane: `wrk -t2 -c10000`,
   with the open-file limit raised for wrk and the platform; errors must be 0.

Prints PASS/MISS against the targets (data plane ≥ 1.0 x Caddy's requests/s; added latency
p50 ≤ 1 ms, p99 ≤ 5 ms; 10,000 connections without an error). Everything runs on one
2-core machine at once (load generator, proxy, upstream), so only ratios mean much.
Exit 0 either way; 1 when set-up fails (tools missing, deploy failed, a target not answering).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import docker
import httpx
import uvloop
from docker.errors import DockerException

from executor.docker_adapter import deployment_container
from launcher.__main__ import dataplane_command
from testkit.platform import Platform, free_port, running_platform

ROOT = Path(__file__).resolve().parents[1]
NETWORK = "veil-functions"
UPSTREAM_EXAMPLE = ROOT / "runtimes" / "go" / "examples" / "server"
UPSTREAM_PATH = "/hello"
DEVELOPER = {"email": "bench-owner@example.com", "password": "bench pass 1", "role": "developer"}
CONSUMER = {"email": "bench-caller@example.com", "password": "bench pass 2", "role": "consumer"}
# The plan the bench subscribes to: a real rate limit (checked on every call), never reached.
BENCH_PLAN = {"name": "Bench", "rate_per_second": 1_000_000, "burst": 1_000_000}
DEPLOY_TIMEOUT = 600.0  # a cold Go build compiles the standard library
CONTAINER_NOFILE = 16384  # the upstream's open-file limit: it must not be the bottleneck

TARGET_VS_CADDY = 1.0  # data plane req/s ÷ Caddy req/s
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 5.0
TARGET_CONNECTIONS = 10_000


class SetupError(Exception):
    """The bench could not be set up: nothing was measured."""


# ---- wrk ---------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(value: str) -> float:
    """wrk's '850.00us', '1.23ms', '1.02s' in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: dict[str, int]
    non_2xx: int

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.non_2xx


def parse_wrk(text: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.MULTILINE)
    total = re.search(r"(\d+) requests in", text)
    if not (rps and p50 and p99 and total):
        raise SetupError(f"could not read wrk's output:\n{text}")
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if socket:
        errors = dict(zip(errors, map(int, socket.groups()), strict=True))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        rps=float(rps[1]),
        p50_ms=to_ms(p50[1]),
        p99_ms=to_ms(p99[1]),
        requests=int(total[1]),
        socket_errors=errors,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
    )


def wrk(
    url: str,
    headers: dict[str, str],
    *,
    duration: float,
    connections: int = 50,
    threads: int = 1,
    timeout: float = 5.0,
) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    argv += ["--latency", f"--timeout={max(1, round(timeout))}s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    done = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=duration + timeout + 60, check=False
    )
    if done.returncode != 0:
        raise SetupError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# ---- the open-loop generator --------------------------------------------------------


@dataclass
class OpenLoop:
    rate: float
    latencies_ms: list[float] = field(default_factory=list)  # from the scheduled send time
    errors: int = 0  # failed exchanges and non-2xx answers
    connections: int = 0  # opened in all (keep-alive: few when answers are quick)
    elapsed: float = 0.0  # seconds from the first scheduled send to the last answer

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        """Send one request, read the whole answer: (status, connection still usable)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, keep = 0, False, True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = b"close" not in value.lower()
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)  # the chunk and its CRLF
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status, keep

    def close(self) -> None:
        self.writer.close()


async def _open_loop(
    url: str, headers: dict[str, str], rate: float, duration: float, warmup: float
) -> OpenLoop:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    result = OpenLoop(rate)
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    cap = max(64, int(rate))  # connections at most; beyond, a request waits (and that counts)
    open_now = 0
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def one(scheduled: float, measured: bool) -> None:
        nonlocal open_now
        connection: _Connection | None = None
        try:
            if not idle.empty() or open_now >= cap:
                connection = await idle.get()
            else:
                open_now += 1
                result.connections += 1
                connection = _Connection(*await asyncio.open_connection(host, port))
            status, keep = await connection.exchange(request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            result.errors += measured
            if connection is not None:
                connection.close()
            open_now -= 1  # its slot may be reopened
            return
        if measured:
            result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
            result.errors += not 200 <= status < 300
        if keep:
            idle.put_nowait(connection)
        else:
            connection.close()
            open_now -= 1

    def launch(scheduled: float, measured: bool) -> None:
        task = loop.create_task(one(scheduled, measured))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    total = int(rate * (warmup + duration))
    start = time.perf_counter() + 0.05

    def pace() -> None:
        # The event loop's timers tick in whole milliseconds; a thread sleeping to each
        # scheduled instant (time.sleep: tens of microseconds late at worst) is finer.
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            loop.call_soon_threadsafe(launch, scheduled, i >= rate * warmup)

    await asyncio.to_thread(pace)  # resumes after the last launch ran (callbacks are FIFO)
    if tasks:
        _, unanswered = await asyncio.wait(set(tasks), timeout=30)
        result.errors += len(unanswered)  # still waiting 30 s after the last send
    result.elapsed = time.perf_counter() - (start + warmup)
    while not idle.empty():
        idle.get_nowait().close()
    return result


def open_loop(
    url: str, headers: dict[str, str], rate: float, duration: float, warmup: float = 2.0
) -> OpenLoop:
    """GET `url` at a fixed `rate` for `warmup` + `duration` s; latencies of the last `duration`."""
    return uvloop.run(_open_loop(url, headers, rate, duration, warmup))


# ---- the upstream and the credential ------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    api_id: str
    slug: str
    deployment_id: str
    address: str  # ip:port on the veil-functions bridge
    cpus: float
    cpu_file: Path | None  # its cgroup's cpuacct.usage (None when not found)


def expect(answer: httpx.Response, *statuses: int) -> dict[str, Any]:
    if answer.status_code not in statuses:
        raise SetupError(
            f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}"
        )
    body: dict[str, Any] = answer.json() if answer.content else {}
    return body


def example_zip(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name != "README.md":
                archive.writestr(path.relative_to(root).as_posix(), path.read_bytes())
    return buffer.getvalue()


def deploy_upstream(api: httpx.Client, auth: dict[str, str]) -> Upstream:
    created = expect(api.post("/api/v1/apis", json={"name": "Bench gateway"}, headers=auth), 201)
    base = f"/api/v1/apis/{created['id']}"
    limits = expect(api.get(f"{base}/settings", headers=auth), 200)
    cpus = float(limits["maximums"]["cpus"])
    expect(api.put(f"{base}/settings", json={"cpus": cpus}, headers=auth), 200)
    files = {"file": ("server.zip", example_zip(UPSTREAM_EXAMPLE))}
    expect(api.post(f"{base}/upload", files=files, headers=auth), 201)
    deployment = expect(api.post(f"{base}/deploy", headers=auth), 202)["deployment_id"]
    deadline = time.monotonic() + DEPLOY_TIMEOUT
    while True:
        status = expect(api.get(f"{base}/status", headers=auth), 200)
        if status.get("deployment_id") == deployment and status["status"] in ("running", "failed"):
            break
        if time.monotonic() > deadline:
            raise SetupError(f"the upstream was not running within {DEPLOY_TIMEOUT:g} s: {status}")
        time.sleep(0.2)
    if status["status"] != "running":
        raise SetupError(f"deploying the upstream failed: {status.get('error')}")
    client = docker.from_env()
    try:
        container = deployment_container(client, deployment)
        ip = container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        cpu_file = container_cpu_file(int(container.attrs["State"].get("Pid") or 0), container.id)
    finally:
        client.close()
    return Upstream(created["id"], created["slug"], deployment, f"{ip}:8080", cpus, cpu_file)


@dataclass(frozen=True)
class Credential:
    headers: dict[str, str]
    what: str


def credential(api: httpx.Client, owner: dict[str, str], upstream: Upstream) -> Credential:
    """The one place that decides how the bench calls the data plane.

    A subscriber's API key when the marketplace exists (`POST /marketplace/apis/{id}/subscribe`
    answers something else than 404/405), on a plan with a rate limit far above what the
    bench sends (created first when `POST /apis/{id}/plans` exists); else the owner's
    bearer token, which the data plane accepts from the API's owner.
    """
    base = f"/api/v1/apis/{upstream.api_id}"
    plan = api.post(f"{base}/plans", json=BENCH_PLAN, headers=owner)
    plan_id: str | None = None
    if plan.status_code not in (404, 405):
        plan_id = expect(plan, 201)["id"]
        expect(api.patch(base, json={"visibility": "public"}, headers=owner), 200)
    tokens = expect(api.post("/api/v1/auth/signup", json=CONSUMER), 201)
    consumer = {"Authorization": f"Bearer {tokens['access_token']}"}
    body = {"plan_id": plan_id} if plan_id else {}
    path = f"/api/v1/marketplace/apis/{upstream.api_id}/subscribe"
    subscribed = api.post(path, json=body, headers=consumer)
    if subscribed.status_code in (404, 405):
        paths = api.get("/openapi.json").json().get("paths", {})
        if "/api/v1/marketplace/apis/{api_id}/subscribe" not in paths:
            return Credential(owner, "the owner's bearer token (no marketplace subscribe yet)")
    key = expect(subscribed, 201)["api_key"]
    rate = f"{BENCH_PLAN['rate_per_second']:,}/s" if plan_id else "its only plan"
    return Credential({"X-API-Key": key}, f"a subscriber's API key (X-API-Key; plan {rate})")


# ---- nginx and Caddy ----------------------------------------------------------------


def tool(name: str) -> str:
    """Where `name` is installed ('' when it is not); nginx lives in /usr/sbin."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or ""


@dataclass(frozen=True)
class Proxy:
    url: str
    pid: int  # nginx's master (its workers are its children), Caddy's one process


@contextlib.contextmanager
def _process(name: str, argv: list[str], url: str, log: Path, **kwargs: Any) -> Iterator[Proxy]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                output = log.read_text()[-2000:]
                raise SetupError(f"{name} exited ({process.returncode}):\n{output}")
            try:
                if httpx.get(url + UPSTREAM_PATH, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SetupError(f"{name} did not answer on {url}:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield Proxy(url, process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextlib.contextmanager
def nginx(workdir: Path, upstream: str) -> Iterator[Proxy]:
    port, home = free_port(), workdir / "nginx"
    home.mkdir()
    config = home / "nginx.conf"
    config.write_text(
        f"""daemon off;
worker_processes {os.cpu_count() or 1};
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    upstream app {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )
    argv = [tool("nginx"), "-p", str(home), "-e", str(home / "error.log"), "-c", str(config)]
    with _process("nginx", argv, f"http://127.0.0.1:{port}", home / "out.log") as proxy:
        yield proxy


@contextlib.contextmanager
def caddy(workdir: Path, upstream: str) -> Iterator[Proxy]:
    port, home = free_port(), workdir / "caddy"
    home.mkdir()
    config = home / "Caddyfile"
    config.write_text(
        f"""{{
    admin off
    auto_https off
    storage file_system {home}/data
}}
:{port} {{
    bind 127.0.0.1
    reverse_proxy {upstream}
}}
"""
    )
    env = {**os.environ, "HOME": str(home)}
    env |= {"XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    argv = [tool("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"]
    with _process("caddy", argv, f"http://127.0.0.1:{port}", home / "out.log", env=env) as proxy:
        yield proxy


@contextlib.contextmanager
def bare_proxy(workdir: Path, upstream: str, workers: int) -> Iterator[Proxy]:
    port, home = free_port(), workdir / "bare"
    home.mkdir()
    argv = dataplane_command("bench.bare_proxy:create_app", "127.0.0.1", port, workers)
    env = {**os.environ, "VEIL_BARE_UPSTREAM": upstream}
    url = f"http://127.0.0.1:{port}"
    with _process("bare plane", argv, url, home / "out.log", env=env, cwd=ROOT) as proxy:
        yield proxy


# ---- the processes measured and their CPU time --------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def launcher_child(platform: Platform, marker: bytes) -> int | None:
    """The launcher's child whose command line contains `marker` (None when there is none)."""
    for child in _children(platform.process.pid):
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
    return None


def dataplane_pids(platform: Platform) -> list[int]:
    """The data-plane server process and its workers (children of the launcher)."""
    root = launcher_child(platform, b"gateway.dataplane.app")
    return [] if root is None else _tree(root)


def redis_pid(platform: Platform) -> int | None:
    """The Redis server the launcher started for this platform (its child `redis-server`).

    The harness clears VEIL_REDIS_URL, so the launcher always starts its own; Redis
    rewrites its command line to 'redis-server 127.0.0.1:<port>', which still matches.
    """
    return launcher_child(platform, b"redis-server")


CLK_TCK = os.sysconf("SC_CLK_TCK")
# pid -> (start time, utime + stime), in clock ticks
TreeReading = dict[int, tuple[int, int]]


def _stat(pid: int) -> tuple[int, int] | None:
    """(start time, utime + stime) of `pid` in clock ticks; None when gone or unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[19]), int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


class ProcessTree:
    """CPU time (user + system) of some processes and all their descendants, from /proc."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots

    def read(self) -> TreeReading | None:
        if not self.roots:
            return None
        found: TreeReading = {}
        for root in self.roots:
            for pid in _tree(root):
                stat = _stat(pid)
                if stat is not None:
                    found[pid] = stat
                elif pid == root:
                    return None  # gone or unreadable: no figure rather than a wrong one
        return found

    def seconds(self, before: TreeReading | None, after: TreeReading | None) -> float | None:
        """CPU seconds used between two readings; None when a process exited in between."""
        if before is None or after is None:
            return None
        ticks = 0
        for pid, (start, used) in before.items():
            now = after.get(pid)
            if now is None or now[0] != start:
                return None  # its CPU time went with it
            ticks += now[1] - used
        ticks += sum(used for pid, (_, used) in after.items() if pid not in before)  # new ones
        return ticks / CLK_TCK


def container_cpu_file(pid: int, container_id: str) -> Path | None:
    """The cgroup v1 file counting the CPU time (ns) of the container whose first process is
    `pid`; None when not found (cgroup v2, another pid namespace, the container gone)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines() if pid > 0 else []
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(",") and container_id in path:
            for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
                usage = Path("/sys/fs/cgroup", mount, path.lstrip("/"), "cpuacct.usage")
                if usage.is_file():
                    return usage
    return None


class CgroupCpu:
    """CPU time of a container, from its cgroup's cpuacct.usage."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def read(self) -> float | None:
        if self.path is None:
            return None
        try:
            return int(self.path.read_text()) / 1e9
        except (OSError, ValueError):
            return None

    def seconds(self, before: float | None, after: float | None) -> float | None:
        return None if before is None or after is None else after - before


class Meter(Protocol):
    def read(self) -> Any: ...

    def seconds(self, before: Any, after: Any) -> float | None: ...


def settle(
    meter: Meter, *, step: float = 0.25, idle: float = 0.05, limit: float = 30.0
) -> float | None:
    """Wait until `meter`'s processes are idle (under `idle` of a core over `step` s).

    Analytics reads the events from a Redis stream after the calls: what it does for a
    round's calls may end after the round. The seconds waited; None when still busy at
    `limit` or unreadable.
    """
    start = time.monotonic()
    previous = meter.read()
    while time.monotonic() < start + limit:
        time.sleep(step)
        current = meter.read()
        used = meter.seconds(previous, current)
        if used is None:
            return None
        if used <= idle * step:
            return time.monotonic() - start
        previous = current
    return None


def established(port: int) -> int:
    """TCP connections established to `port` on this host now (0 when `ss` is missing)."""
    if shutil.which("ss") is None:
        return 0
    done = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    )
    return len(done.stdout.splitlines())


def raise_nofile() -> int:
    """Soft open-file limit up to the hard one (for wrk's 10,000 sockets); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- the measurements ---------------------------------------------------------------


# What each call costs in CPU, per target: the proxy's processes, for the data plane also
# the platform's processes that every call costs, and the upstream container.
CPU_COLUMNS = ("proxy", "analytics", "Redis", "upstream")


@dataclass
class Target:
    name: str
    url: str
    # what is measured around its rounds, by column (the others print as "—")
    meters: dict[str, Meter] = field(default_factory=dict)
    rounds: list[WrkResult] = field(default_factory=list)
    # CPU µs per request, per column and round (None: a process gone or unreadable)
    cpu: dict[str, list[float | None]] = field(default_factory=dict)
    unsettled: int = 0  # rounds after which analytics was still busy at the limit

    @property
    def median(self) -> WrkResult:
        return sorted(self.rounds, key=lambda r: r.rps)[len(self.rounds) // 2]


@dataclass
class Report:
    server: str
    workers: int
    targets: list[Target]
    cpu_us: list[float]  # the data plane's CPU (all its processes) per request, per round
    direct: OpenLoop
    plane: OpenLoop
    # Only when the data plane's throughput is under twice --rate: the same at half of
    # that throughput, where queueing does not dominate (for reference, not a target).
    reference: tuple[OpenLoop, OpenLoop] | None
    held: WrkResult
    peak_established: int
    loads: list[float]


def _us_per_request(seconds: float | None, requests: int) -> float | None:
    return None if seconds is None or not requests else seconds / requests * 1e6


def _fmt_us(value: float | None, width: int = 0) -> str:
    return f"{'—':>{width}}" if value is None else f"{value:{width}.0f}"


def throughput(args: argparse.Namespace, targets: list[Target], headers: dict[str, str]) -> None:
    """wrk against each target in turn, `--rounds` times; CPU per request of what it measures.

    The proxy and the upstream are read just before and just after the measured wrk run;
    analytics and Redis (data plane only) after analytics has caught up with the warm-up's
    events and then with the round's (`settle`), so each round is charged its own events.
    """
    print(
        f"\n[throughput] wrk -t1 -c50 -d{args.duration:g}s --latency,"
        f" after {args.warmup:g} s of warm-up each",
        flush=True,
    )
    for round_ in range(1, max(1, args.rounds) + 1):
        for target in targets:
            late = {c: m for c, m in target.meters.items() if c in ("analytics", "Redis")}
            wrk(target.url, headers, duration=args.warmup)
            if "analytics" in late:
                settle(late["analytics"])
            before = {column: meter.read() for column, meter in target.meters.items()}
            result = wrk(target.url, headers, duration=args.duration)
            after = {c: m.read() for c, m in target.meters.items() if c not in late}
            note = ""
            if "analytics" in late:
                waited = settle(late["analytics"])
                target.unsettled += waited is None
                note = (
                    "  (analytics still busy)"
                    if waited is None
                    else f"  (analytics idle after {waited:.1f} s)"
                )
            after |= {column: meter.read() for column, meter in late.items()}
            for column, meter in target.meters.items():
                seconds = meter.seconds(before[column], after[column])
                target.cpu.setdefault(column, []).append(_us_per_request(seconds, result.requests))
            target.rounds.append(result)
            print(
                f"  round {round_}  {target.name:<10} {result.rps:9.0f} req/s"
                f"  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
                f"  errors {result.errors}  (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
            if target.cpu:
                figures = "  ".join(
                    f"{column} {_fmt_us(target.cpu[column][-1])}"
                    for column in CPU_COLUMNS
                    if column in target.cpu
                )
                print(f"  {'':<9}{'':<10} CPU us/request: {figures}{note}", flush=True)


def added_latency(
    args: argparse.Namespace,
    direct_url: str,
    plane_url: str,
    headers: dict[str, str],
    rate: float,
) -> tuple[OpenLoop, OpenLoop]:
    print(
        f"\n[latency] open loop at {rate:g} req/s for {args.duration:g} s after 2 s of"
        " warm-up; each latency from the request's scheduled send time",
        flush=True,
    )
    runs = []
    for name, url in (("direct", direct_url), ("data plane", plane_url)):
        run = open_loop(url, headers, rate, args.duration)
        runs.append(run)
        print(
            f"  {name:<10} p50 {run.percentile(50):8.2f} ms  p99 {run.percentile(99):8.2f} ms"
            f"  answered {len(run.latencies_ms)}  errors {run.errors}"
            f"  connections {run.connections}  (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    return runs[0], runs[1]


def many_connections(
    args: argparse.Namespace, plane_url: str, headers: dict[str, str]
) -> tuple[WrkResult, int]:
    """`--connections` connections at once through the data plane; (wrk's result, peak seen).

    wrk's timeout is 30 s: a slow answer is not an error here (the throughput test is
    about speed), a refused, reset or failed one is.
    """
    count, seconds = args.connections, max(1, round(args.duration))
    print(
        f"\n[connections] wrk -t2 -c{count} -d{seconds}s --timeout 30s through the data plane",
        flush=True,
    )
    argv = ["wrk", "-t2", f"-c{count}", f"-d{seconds}s", "--latency", "--timeout=30s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    port = urlsplit(plane_url).port or 80
    peak = 0
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen([*argv, plane_url], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + seconds + 120
            while process.poll() is None:
                peak = max(peak, established(port))
                if time.monotonic() > deadline:
                    raise SetupError("wrk did not finish in time")
                time.sleep(1.0)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
        out.seek(0)
        result = parse_wrk(out.read().decode(errors="replace"))
    errors = ", ".join(f"{k} {v}" for k, v in result.socket_errors.items())
    print(
        f"  {result.requests} answers, {result.rps:.0f} req/s, p50 {result.p50_ms:.0f} ms,"
        f" p99 {result.p99_ms:.0f} ms; socket errors: {errors}; non-2xx {result.non_2xx};"
        f" most connections established at once {peak}",
        flush=True,
    )
    return result, peak


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def cpu_table(targets: list[Target], rounds: int) -> None:
    """Median CPU µs per request by target: the proxy, what else the platform spends, total."""
    print(
        f"\nCPU per request (µs, user + system, median of {rounds} round(s);"
        " —: not measured or unreadable):"
    )
    print(
        f"  {'target':<10} {'proxy':>7} {'+ analytics':>12} {'+ Redis':>8} {'total':>7}"
        f" {'upstream':>9}"
    )
    totals: dict[str, float] = {}
    for target in targets:
        medians = {column: _median(target.cpu.get(column, [])) for column in CPU_COLUMNS}
        parts = [c for c in ("proxy", "analytics", "Redis") if c in target.meters]
        values = [medians[c] for c in parts]
        total = sum(v for v in values if v is not None) if parts and None not in values else None
        if total is not None:
            totals[target.name] = total
        print(
            f"  {target.name:<10} {_fmt_us(medians['proxy'], 7)}"
            f" {_fmt_us(medians['analytics'], 12)} {_fmt_us(medians['Redis'], 8)}"
            f" {_fmt_us(total, 7)} {_fmt_us(medians['upstream'], 9)}"
        )
    plane = totals.get("data plane")
    others = [name for name in ("nginx", "Caddy") if totals.get(name)]
    if plane is not None and others:
        ratios = ", ".join(f"{plane / totals[name]:.1f}x {name}'s" for name in others)
        print(f"  data plane total = {ratios}")
    for target in targets:
        if target.unsettled:
            print(
                f"  ({target.name}: analytics still busy {target.unsettled} time(s) when read:"
                " its figure misses some of its work)"
            )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def summary(args: argparse.Namespace, report: Report) -> None:
    medians = {t.name: t.median for t in report.targets}
    direct, plane = medians["direct"], medians["data plane"]
    rounds = len(report.targets[0].rounds)
    print(f"\nThroughput (wrk -t1 -c50 -d{args.duration:g}s, median of {rounds} round(s)):")
    print(f"  {'target':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'/ direct':>9}")
    for name, result in medians.items():
        print(
            f"  {name:<10} {result.rps:9.0f} {result.p50_ms:8.2f} {result.p99_ms:8.2f}"
            f" {result.rps / direct.rps:8.2f}x"
        )
    vs_caddy, vs_nginx = plane.rps / medians["Caddy"].rps, plane.rps / medians["nginx"].rps
    print(f"  data plane / Caddy {vs_caddy:.2f}x, data plane / nginx {vs_nginx:.2f}x")
    if "bare plane" in medians:
        bare = medians["bare plane"]
        print(
            f"  bare plane / Caddy {bare.rps / medians['Caddy'].rps:.2f}x: the data plane's"
            " server and client alone, before any of its own work"
        )
    if report.cpu_us:
        print(
            f"  data plane ({report.server}, {report.workers} workers): CPU per request"
            f" {statistics.median(report.cpu_us):.0f} us (all its processes)"
        )
    cpu_table(report.targets, rounds)
    d50, d99 = report.direct.percentile(50), report.direct.percentile(99)
    p50, p99 = report.plane.percentile(50), report.plane.percentile(99)
    added50, added99 = p50 - d50, p99 - d99
    print(f"\nLatency at a fixed {args.rate:g} req/s (open loop, {args.duration:g} s):")
    print(f"  {'':<10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    print(f"  {'direct':<10} {d50:8.2f} {d99:8.2f} {report.direct.errors:7d}")
    print(f"  {'data plane':<10} {p50:8.2f} {p99:8.2f} {report.plane.errors:7d}")
    print(f"  {'added':<10} {added50:8.2f} {added99:8.2f}")
    if report.reference is not None:
        ref_direct, ref_plane = report.reference
        r50 = ref_plane.percentile(50) - ref_direct.percentile(50)
        r99 = ref_plane.percentile(99) - ref_direct.percentile(99)
        print(
            f"  for reference, at {ref_plane.rate:g} req/s (half the data plane's throughput):"
            f" data plane p50 {ref_plane.percentile(50):.2f} / p99 {ref_plane.percentile(99):.2f}"
            f" ms, added p50 {r50:.2f} / p99 {r99:.2f} ms, errors {ref_plane.errors}"
        )
    held = report.held
    print(
        f"\n{args.connections:,} connections through the data plane: {held.requests} answers,"
        f" {held.errors} errors ({', '.join(f'{k} {v}' for k, v in held.socket_errors.items())},"
        f" non-2xx {held.non_2xx}), {report.peak_established} established at once at most"
    )
    print(f"\nLoad average while it ran: {', '.join(f'{x:.1f}' for x in report.loads)}")
    latency_errors = report.direct.errors + report.plane.errors
    held_ok = held.errors == 0 and held.requests > 0 and args.connections >= TARGET_CONNECTIONS
    rows = [
        (
            f"data plane req/s >= {TARGET_VS_CADDY:g}x Caddy",
            f"{vs_caddy:.2f}x",
            vs_caddy >= TARGET_VS_CADDY,
        ),
        (
            f"added p50 <= {TARGET_ADDED_P50_MS:g} ms",
            f"{added50:.2f} ms",
            added50 <= TARGET_ADDED_P50_MS and not latency_errors,
        ),
        (
            f"added p99 <= {TARGET_ADDED_P99_MS:g} ms",
            f"{added99:.2f} ms",
            added99 <= TARGET_ADDED_P99_MS and not latency_errors,
        ),
        (f"{TARGET_CONNECTIONS:,} connections, 0 errors", f"{held.errors} errors", held_ok),
    ]
    print("\nTargets (issue 4):")
    for title, value, ok in rows:
        print(f"  {title:<34} {value:>12}  {verdict(ok)}")


def _server_name(pids: list[int]) -> str:
    with contextlib.suppress(OSError, IndexError):
        cmdline = Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")
        for name in (b"granian", b"uvicorn", b"gunicorn", b"hypercorn"):
            if name in cmdline:
                return name.decode()
    return "?"


def _workers(pids: list[int]) -> int:
    # granian and uvicorn --workers: a supervisor plus the workers; uvicorn alone: one process
    return len(pids) - 1 if len(pids) > 1 else len(pids)


def _pid(pid: int | None) -> str:
    return "— (not found)" if pid is None else str(pid)


def run(args: argparse.Namespace, tmp: Path, label: str, nofile: int) -> Report:
    extra_env = {
        "VEIL_NOFILE_LIMIT": str(min(CONTAINER_NOFILE, nofile)),
        "VEIL_BCRYPT_ROUNDS": "4",
        "VEIL_ACCESS_TOKEN_TTL_SECONDS": "7200",
    }
    loads = [os.getloadavg()[0]]
    with (
        running_platform(tmp, label, extra_env, dataplane_workers=args.workers) as platform,
        httpx.Client(base_url=platform.gateway, timeout=60) as api,
    ):
        owner_tokens = expect(api.post("/api/v1/auth/signup", json=DEVELOPER), 201)
        owner = {"Authorization": f"Bearer {owner_tokens['access_token']}"}
        upstream = deploy_upstream(api, owner)
        cred = credential(api, owner, upstream)
        plane_url = f"{platform.dataplane}/{upstream.slug}{UPSTREAM_PATH}"
        check = httpx.get(plane_url, headers=cred.headers, timeout=10)
        if check.status_code != 200:
            raise SetupError(f"the data plane answered {check.status_code}: {check.text}")
        pids = dataplane_pids(platform)
        server = _server_name(pids)
        print(
            f"\nVeil gateway benchmark: instance {label}, {os.cpu_count()} cores,"
            f" open files {nofile}\n"
            f"  upstream    runtimes/go/examples/server (Go net/http, static binary; the fastest"
            f" example), {upstream.cpus:g} CPUs, {upstream.address} on {NETWORK}\n"
            f"  data plane  {server}, {_workers(pids)} worker(s), {platform.dataplane}\n"
            f"  credential  {cred.what}",
            flush=True,
        )
        analytics = launcher_child(platform, b"analytics.app")
        redis = redis_pid(platform)
        upstream_cpu = CgroupCpu(upstream.cpu_file)
        with (
            nginx(tmp, upstream.address) as nginx_,
            caddy(tmp, upstream.address) as caddy_,
            bare_proxy(tmp, upstream.address, _workers(pids)) as bare,
        ):
            targets = [
                Target(
                    "direct",
                    f"http://{upstream.address}{UPSTREAM_PATH}",
                    {"upstream": upstream_cpu},
                ),
                Target(
                    "data plane",
                    plane_url,
                    {
                        "proxy": ProcessTree(pids[:1]),
                        "analytics": ProcessTree([analytics] if analytics else []),
                        "Redis": ProcessTree([redis] if redis else []),
                        "upstream": upstream_cpu,
                    },
                ),
                Target(
                    "bare plane",
                    bare.url + UPSTREAM_PATH,
                    {"proxy": ProcessTree([bare.pid]), "upstream": upstream_cpu},
                ),
                Target(
                    "nginx",
                    nginx_.url + UPSTREAM_PATH,
                    {"proxy": ProcessTree([nginx_.pid]), "upstream": upstream_cpu},
                ),
                Target(
                    "Caddy",
                    caddy_.url + UPSTREAM_PATH,
                    {"proxy": ProcessTree([caddy_.pid]), "upstream": upstream_cpu},
                ),
            ]
            print(
                f"  bare plane  {bare.url}\n  nginx       {nginx_.url}\n"
                f"  Caddy       {caddy_.url}\n"
                f"  CPU read    data plane pid {_pid(pids[0] if pids else None)} and children,"
                f" analytics {_pid(analytics)}, Redis {_pid(redis)}, bare plane {bare.pid} and"
                f" children, nginx {nginx_.pid} and"
                f" children, Caddy {caddy_.pid}; upstream"
                f" {upstream.cpu_file or '— (no cgroup v1 cpuacct found)'}",
                flush=True,
            )
            throughput(args, targets, cred.headers)
        plane_cpu = targets[1].cpu.get("proxy", [])
        cpu_us = [value for value in plane_cpu if value is not None]
        loads.append(os.getloadavg()[0])
        direct, plane = added_latency(args, targets[0].url, plane_url, cred.headers, args.rate)
        reference = None
        capacity = next(t for t in targets if t.name == "data plane").median.rps
        if capacity < 2 * args.rate:
            half = max(10.0, round(capacity / 2, -1))
            reference = added_latency(args, targets[0].url, plane_url, cred.headers, half)
        loads.append(os.getloadavg()[0])
        held, peak = many_connections(args, plane_url, cred.headers)
        loads.append(os.getloadavg()[0])
    workers = _workers(pids)
    return Report(server, workers, targets, cpu_us, direct, plane, reference, held, peak, loads)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (median kept)")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop requests/s")
    parser.add_argument("--connections", type=int, default=TARGET_CONNECTIONS)
    parser.add_argument("--workers", type=int, help="data-plane workers (default: as make run)")
    args = parser.parse_args()

    missing = [name for name in ("wrk", "nginx", "caddy") if not tool(name)]
    if missing:
        print(f"missing: {', '.join(missing)}; run: bash scripts/setup.sh --with-bench")
        return 1
    nofile = raise_nofile()
    label = f"bench-{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix="veil-bench-gw-"))
    try:
        report = run(args, tmp, label, nofile)
    except (SetupError, RuntimeError, TimeoutError, httpx.HTTPError, DockerException) as exc:
        print(f"\nset-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary(args, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
