"""Real servers for tests: Redis and PostgreSQL started from Debian's binaries on free ports."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from launcher.redis_conf import redis_url, write_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} at start-up")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make test` (it installs it)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="veil-test-redis-")
    password = secrets.token_urlsafe(24)  # as `make run` does: never a Redis without one
    config = write_config(Path(workdir), port, password, persistent=False)
    process = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL)
    try:
        _wait_port(port, process, "redis-server", 10)
        yield redis_url(port, password)
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `make test` (it installs it)")
    return found[-1]


def _memory_dir() -> str | None:
    """/dev/shm where there is one: a throw-away cluster needs no disk, and on a busy
    one each CREATE DATABASE waited for it (10 times as long as in memory)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away cluster owned by the `postgres` user (initdb refuses to run as root)."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="veil-test-pg-", dir=_memory_dir()))
    user = pwd.getpwnam("postgres")
    os.chown(workdir, user.pw_uid, user.pw_gid)
    datadir = workdir / "data"

    def as_postgres() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    subprocess.run(
        [_pg_bin("initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        stdout=subprocess.DEVNULL,
        preexec_fn=as_postgres,
    )
    process = subprocess.Popen(
        [
            _pg_bin("postgres"),
            "-D",
            str(datadir),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(workdir),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=as_postgres,
    )
    try:
        _wait_port(port, process, "postgres", 30)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        # Fast shutdown: SIGTERM's smart one waits for every client to leave, and a
        # pool nobody disposed of yet keeps it waiting.
        _stop(process, signal.SIGINT)
        shutil.rmtree(workdir, ignore_errors=True)


class FaultyProxy:
    """A TCP proxy on loopback in front of a real server, to play a sick network:
    `delay` seconds added before each chunk in either direction, or `blackhole`
    (connections accepted, nothing passed on, in either direction). Runs its own
    event loop in a thread, so a test's blocked loop cannot stall it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self.blackhole = False
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while self.blackhole:  # noqa: ASYNC110 - flipped from another thread
                    await asyncio.sleep(0.05)
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
