"""Child processes of the launcher, stopped by their own pids."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parent.parent


def raise_nofile() -> None:
    """The soft open-file limit up to the hard one (the launcher's first act).

    Inherited by every service, so a data-plane worker can hold thousands of client
    and upstream connections at once (the benchmarks open 10,000).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()


class ChildSet:
    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(self, child: Child, env: dict[str, str], data_dir: Path) -> None:
        log_dir = data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        # Output goes to the terminal and is tee'd nowhere: `make run` is interactive.
        # A log file per service would be the next step for a daemonised install.
        child.process = subprocess.Popen(child.argv, env=env, cwd=ROOT)  # noqa: S603
        self.children.append(child)

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.returncode is not None), None)

    def stop_all(self, grace: float = 8.0) -> None:
        # Reverse order: workers and services first, Redis last.
        for child in reversed(self.children):
            _signal(child, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            assert child.process is not None
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                _signal(child, signal.SIGKILL)
                child.process.wait(timeout=5)


def _signal(child: Child, signum: int) -> None:
    if child.process is not None and child.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.process.pid, signum)


def wait_http(url: str, name: str, children: ChildSet, timeout: float = 120.0) -> None:
    # Generous: a service that died is reported at once (first_exited); on a busy
    # 2-core box (load 8) imports alone took over 60 s.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = children.first_exited()
        if dead is not None:
            raise RuntimeError(f"{dead.name} exited with code {dead.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310  # loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer on {url} within {timeout:g} s")


def wait_redis(url: str, children: ChildSet, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    client = Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            dead = children.first_exited()
            if dead is not None:
                raise RuntimeError(
                    f"redis exited with code {dead.returncode}: is port {url} already in use?"
                )
            try:
                if client.ping():
                    return
            except RedisError:
                time.sleep(0.1)
    finally:
        client.close()
    raise RuntimeError(f"redis did not answer on {url} within {timeout:g} s")
