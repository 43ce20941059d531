"""Build sandboxes: throw-away containers where tenant code runs at build time.

Installing dependencies runs tenant code (a pip build backend, an npm lifecycle
script), and the engine's builder cannot give a build step the function
baseline (no way to drop capabilities, set no-new-privileges or cap a layer's
size). So those steps run here instead, in a container with the same baseline
as a running function: uid 10001, every capability dropped, no-new-privileges,
a read-only root filesystem, memory, CPU, pids and open-file limits, a size-capped
tmpfs for every writable path (the disk cap, enforced by the kernel while it is
written), and the build network (or none). The image build that follows runs no
tenant code: it only copies the sandbox's sanitised output in
(executor/sandbox_output.py).

Inputs go in and outputs come out through `exec` with `tar` on stdin/stdout: the
engine's archive API cannot reach a tmpfs mount, and a bind mount would tie the
executor to a host path.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import docker
import docker.errors
from docker.types import LogConfig, Ulimit
from docker.utils.socket import STDERR, STDOUT, frames_iter

from executor.docker_adapter import (
    ANSI_ESCAPE,
    CPU_PERIOD_US,
    BuildFailed,
    cpu_quota_us,
    translated,
)

SANDBOX_USER = "10001:10001"
_LINE_LIMIT = 4000  # characters of one log line kept; the rest is cut


@dataclass(frozen=True)
class SandboxSpec:
    image: str
    name: str
    labels: dict[str, str]
    network: str | None  # None: no network at all
    memory_mb: int  # for the processes
    disk_mb: int  # for the files they write, in all (and each writable path's size)
    cpus: float
    pids_limit: int
    nofile: int
    writable: tuple[str, ...]  # tmpfs mount points (besides /tmp and /veil)
    env: dict[str, str] = field(default_factory=dict)


class Sandbox:
    """One started sandbox container; `remove()` it (also from another thread) when done."""

    def __init__(self, client: docker.DockerClient, spec: SandboxSpec) -> None:
        self._api = client.api
        self.spec = spec
        self._removed = threading.Event()
        self._removing = threading.Lock()
        self._gone = False
        options = f"rw,exec,nosuid,nodev,size={spec.disk_mb}m,mode=1777"
        mounts = {path: options for path in ("/tmp", "/veil", *spec.writable)}  # noqa: S108
        # tmpfs pages are charged to the container's memory, so the files share
        # one hard limit with the processes: memory_mb for them plus disk_mb for
        # what is written (any one path may hold all of it, together no more).
        memory = (spec.memory_mb + spec.disk_mb) * 1024 * 1024
        with translated("start build sandbox"):
            self.id = str(
                client.containers.run(
                    spec.image,
                    ["sleep", "infinity"],
                    name=spec.name,
                    detach=True,
                    user=SANDBOX_USER,
                    environment={"HOME": "/tmp", **spec.env},  # noqa: S108 - the sandbox's own tmpfs
                    labels=spec.labels,
                    network_mode="none" if spec.network is None else spec.network,
                    read_only=True,
                    tmpfs=mounts,
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges:true"],
                    pids_limit=spec.pids_limit,
                    mem_limit=memory,
                    memswap_limit=memory,
                    cpu_period=CPU_PERIOD_US,
                    cpu_quota=cpu_quota_us(spec.cpus),
                    ulimits=[Ulimit(name="nofile", soft=spec.nofile, hard=spec.nofile)],
                    log_config=LogConfig(type="none"),  # output comes through exec
                    init=True,
                    ipc_mode="private",
                ).id
            )

    def put(self, archive: BinaryIO, dest: str) -> None:
        """Unpack a tar (made by Veil, not the tenant) into `dest` inside the sandbox."""
        unpack = 'mkdir -p "$1" && exec tar -x -o -C "$1" -f -'
        sock = self._exec(["sh", "-c", unpack, "sh", dest], stdin=True)
        raw = getattr(sock, "_sock", sock)
        try:
            while chunk := archive.read(256 * 1024):
                raw.sendall(chunk)
            raw.shutdown(socket.SHUT_WR)
            errors = b"".join(data for stream, data in frames_iter(sock, False) if stream == STDERR)
        finally:
            _close(sock)
        self._check(f"copy the build inputs into {dest}", errors)

    def run(self, argv: list[str], on_log: Callable[[str], None]) -> int:
        """Run `argv` as the sandbox user, each output line to `on_log`; its exit code."""
        sock = self._exec(argv)
        pending = {STDOUT: b"", STDERR: b""}
        try:
            for stream, data in frames_iter(sock, False):
                buffered = pending.get(stream, b"") + data
                *lines, pending[stream] = buffered.split(b"\n")
                for line in lines:
                    _emit(line, on_log)
        finally:
            _close(sock)
        for rest in pending.values():
            _emit(rest, on_log)
        return self._exit_code()

    def export(self, path: str) -> Iterator[bytes]:
        """The tar of `path` inside the sandbox, as it streams out."""
        sock = self._exec(["tar", "-c", "-C", path, "-f", "-", "."])
        errors = b""
        try:
            for stream, data in frames_iter(sock, False):
                if stream == STDOUT:
                    yield data
                elif len(errors) < 4096:
                    errors += data
        finally:
            _close(sock)
        self._check(f"read the build output from {path}", errors)

    def remove(self) -> None:
        """Kill and remove the container (idempotent; ends every exec stream at once).

        A second caller (the build, while the time limit's timer is removing it)
        returns only once the container is gone.
        """
        self._removed.set()  # first: the build sees at once that it was cut
        with self._removing:
            if self._gone:
                return
            with suppress(docker.errors.NotFound), translated("remove build sandbox"):
                self._api.remove_container(self.id, force=True)
            self._gone = True

    @property
    def removed(self) -> bool:
        return self._removed.is_set()

    def _exec(self, argv: list[str], stdin: bool = False) -> Any:
        with translated("run in build sandbox"):
            self._exec_id = self._api.exec_create(
                self.id, argv, stdin=stdin, user=SANDBOX_USER, workdir="/veil"
            )["Id"]
            sock = self._api.exec_start(self._exec_id, socket=True)
        # Steps may be silent for minutes: the caller's timer bounds them, not a read timeout.
        getattr(sock, "_sock", sock).settimeout(None)
        return sock

    def _exit_code(self) -> int:
        if self._removed.is_set():
            return -1
        with translated("inspect build sandbox"):
            code = self._api.exec_inspect(self._exec_id).get("ExitCode")
        return -1 if code is None else int(code)

    def _check(self, action: str, errors: bytes) -> None:
        code = self._exit_code()
        if code != 0 and not self._removed.is_set():
            detail = errors.decode("utf-8", "replace").strip()[:500]
            raise BuildFailed(f"Could not {action} (exit {code}): {detail}")


def _close(sock: Any) -> None:
    """Close the hijacked connection for good.

    docker-py hands out a SocketIO over the connection's socket, which the HTTP
    response's own file objects still reference, so closing either leaves the
    descriptor open; detaching the socket and closing its descriptor does not.
    """
    raw = getattr(sock, "_sock", None)  # read first: SocketIO.close() forgets it
    sock.close()
    if isinstance(raw, socket.socket) and raw.fileno() != -1:
        os.close(raw.detach())


def _emit(line: bytes, on_log: Callable[[str], None]) -> None:
    text = ANSI_ESCAPE.sub("", line.decode("utf-8", "replace")).rstrip("\r")
    if text.strip():
        on_log(text[:_LINE_LIMIT])
