"""The whole platform in a sandbox, for the e2e tests and the benchmarks.

Starts `python -m launcher` exactly as `make run` does, but on free loopback
ports, with its own data directory, its own Redis and its own instance label;
on exit stops it with Ctrl-C (SIGINT) and removes every container and image
that carries the label.

The data plane runs as several worker processes (as many as `make run` starts,
unless `dataplane_workers` says otherwise). Each worker only accepts connections
once its own start-up is complete, so the first 200 from /healthz means "serving"
and never reaches a half-started worker; a worker that fails to start makes the
data plane, then the launcher, exit non-zero, which the wait below reports.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis import Redis
from redis.exceptions import RedisError

from executor.docker_adapter import DockerAdapter
from launcher.processes import raise_nofile

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("gateway", "dataplane", "executor", "analytics", "redis")


@dataclass(frozen=True)
class Platform:
    gateway: str
    dataplane: str
    log: Path
    process: subprocess.Popen[bytes]
    data_dir: Path
    redis_port: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _worker_registered(redis: Redis) -> bool:
    try:  # the build worker has no /healthz: rq lists it once it listens
        return bool(redis.scard("rq:workers"))
    except RedisError:
        return False


@contextmanager
def running_platform(
    workdir: Path,
    label: str,
    extra_env: dict[str, str] | None = None,
    timeout: float = 240,
    dataplane_workers: int | None = None,
    remove_containers: bool = True,
) -> Iterator[Platform]:
    """The platform as `make run` starts it; stopped (and, unless told otherwise, its
    labelled containers and images removed) when the block ends."""
    ports = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEIL_")}
    env |= {f"VEIL_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    env |= {"VEIL_DATA_DIR": str(workdir / "data"), "VEIL_INSTANCE_LABEL": label}
    # Known here, so the harness can talk to the Redis the launcher starts with it;
    # a port of its own for the build proxy, beside any other platform on the host.
    env |= {
        "VEIL_REDIS_PASSWORD": secrets.token_urlsafe(24),
        "VEIL_BUILD_PROXY_PORT": str(free_port()),
    }
    if dataplane_workers is not None:  # else the launcher's default, as for `make run`
        env["VEIL_DATAPLANE_WORKERS"] = str(dataplane_workers)
    env |= extra_env or {}
    log_path = workdir / "platform.log"
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    dataplane = f"http://127.0.0.1:{ports['dataplane']}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "launcher"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=raise_nofile,
        )
        redis = Redis(
            host="127.0.0.1",
            port=ports["redis"],
            password=env["VEIL_REDIS_PASSWORD"],
            socket_timeout=2,
        )
        try:
            deadline = time.monotonic() + timeout
            while not (
                b"Veil is running" in log_path.read_bytes()  # every service answered
                and _answers(f"{gateway}/healthz")
                and _answers(f"{dataplane}/healthz")
                and _worker_registered(redis)
            ):
                if process.poll() is not None:
                    raise RuntimeError("launcher exited:\n" + log_path.read_text()[-3000:])
                if time.monotonic() > deadline:
                    raise TimeoutError("platform did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.1)
            redis.close()
            yield Platform(gateway, dataplane, log_path, process, workdir / "data", ports["redis"])
        finally:
            redis.close()
            stop(process)
            if remove_containers:
                remove_labelled(label)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """Ctrl-C, as a person would; SIGKILL only if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return int(process.returncode)


def remove_labelled(label: str) -> None:
    docker = DockerAdapter.from_env()
    try:
        labels = {"veil.instance": label}
        for container_id in docker.find_containers(labels):
            docker.remove_container(container_id, stop_timeout=1)
        for image_id in docker.find_images(labels):
            docker.remove_image(image_id)
    finally:
        docker.close()
