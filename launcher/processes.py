"""Child processes of the launcher, stopped by their own pids."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from shared.procfs import stat_fields

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


_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
RESTART_BACKOFF_MAX_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 60.0  # a child that ran this long starts its back-off afresh


def become_subreaper() -> None:
    """Orphans of our children (rq's work horse, in a process group of its own, when
    its worker dies) become ours, not init's: we can still find and stop them."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1)


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children first), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float | None = None  # when a dead child is due to start again

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()


class ChildSet:
    def __init__(self, data_dir: Path) -> None:
        self.children: list[Child] = []
        self.data_dir = data_dir

    def start(self, child: Child, env: dict[str, str]) -> None:
        child.env = env
        self._spawn(child)
        self.children.append(child)

    def _spawn(self, child: Child) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        # Output goes to the terminal: `make run` is interactive. A process group of
        # its own: a terminal's Ctrl-C reaches the launcher only, which stops the
        # children in order (Redis last) rather than all at once.
        child.process = subprocess.Popen(  # noqa: S603
            child.argv, env=child.env, cwd=ROOT, process_group=0
        )
        child.started_at = time.monotonic()
        child.restart_at = None

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.returncode is not None), None)

    def supervise(self) -> None:
        """Start again, with back-off, what died; reap orphans that came to us."""
        now = time.monotonic()
        for child in self.children:
            if child.returncode is None:
                continue
            if child.restart_at is None:
                if now - child.started_at >= HEALTHY_AFTER_SECONDS:
                    child.restarts = 0
                delay = min(2.0**child.restarts, RESTART_BACKOFF_MAX_SECONDS)
                child.restart_at = now + delay
                child.restarts += 1
                print(
                    f"[veil] {child.name} exited with code {child.returncode};"
                    f" starting it again in {delay:g} s (restart {child.restarts})",
                    file=sys.stderr,
                    flush=True,
                )
            elif now >= child.restart_at:
                self._spawn(child)
                print(f"[veil] {child.name} started again", file=sys.stderr, flush=True)
        _reap_orphans({c.process.pid for c in self.children if c.process is not None})

    def stop_all(self, grace: float = 8.0) -> None:
        """Every process we started and everything below it: SIGTERM, a bounded grace,
        then SIGKILL. Redis last, so that the others' shutdown writes land."""
        services = [c for c in self.children if c.name != "redis"]
        last = [c for c in self.children if c.name == "redis"]
        redis = {p for c in last if c.process is not None for p in _tree(c.process.pid)}
        for group in (services, last):
            pids = [
                p for child in reversed(group) if child.process for p in _tree(child.process.pid)
            ]
            if group is services:
                # Orphans of the services (a horse whose worker died) are ours now.
                pids += [p for p in descendants(os.getpid()) if p not in redis and p not in pids]
            if not pids:
                continue
            _signal_all(pids, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                _reap_orphans(set())
                for child in group:
                    if child.process is not None:
                        child.process.poll()
                time.sleep(0.05)
            _signal_all([p for p in pids if _alive(p)], signal.SIGKILL)
            for child in group:
                if child.process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.process.wait(timeout=5)
            _reap_orphans(set())


def _tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)] if _alive(pid) else []


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        state = stat_fields(pid)[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _reap_orphans(ours: set[int]) -> None:
    """Wait for exited processes that are not our Popen children (those poll()
    themselves: reaping them here would lose their exit codes)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in ours or info.si_pid == 0:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


def wait_http(url: str, name: str, children: ChildSet, timeout: float = 120.0) -> None:
    # Generous: a service that died is reported at once (first_exited), and on a
    # busy small machine importing the services alone can take a minute.
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
