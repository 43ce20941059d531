"""`python -m launcher`: start the whole platform on one host (what `make run` calls).

Starts a local Redis when VEIL_REDIS_URL is not set, applies migrations,
starts every service as a child process, waits until each answers, prints the
URLs, then supervises: a service that exits is started again with back-off
while the rest keeps serving. On Ctrl-C (or SIGTERM) it stops every process it
started and everything below them (the build worker's job process included:
the launcher is their subreaper), Redis last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from launcher.processes import (
    Child,
    ChildSet,
    become_subreaper,
    raise_nofile,
    wait_http,
    wait_redis,
)
from launcher.redis_conf import redis_url, write_config
from shared.platform_secrets import load_or_create_secrets

ROOT = Path(__file__).resolve().parent.parent


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main() -> int:
    raise_nofile()  # a data-plane worker holds two sockets per call in flight
    data_dir = Path(os.environ.get("VEIL_DATA_DIR", ROOT / "data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {
        "gateway": _port("VEIL_GATEWAY_PORT", 8080),
        "dataplane": _port("VEIL_DATAPLANE_PORT", 8000),
        "executor": _port("VEIL_EXECUTOR_PORT", 8081),
        "analytics": _port("VEIL_ANALYTICS_PORT", 8082),
    }
    host = os.environ.get("VEIL_BIND_HOST", "127.0.0.1")
    env = dict(os.environ)
    env["VEIL_DATA_DIR"] = str(data_dir)
    env.update(load_or_create_secrets(data_dir / "secrets.env", env))
    env.setdefault("VEIL_EXECUTOR_URL", f"http://127.0.0.1:{ports['executor']}")
    env.setdefault("VEIL_ANALYTICS_URL", f"http://127.0.0.1:{ports['analytics']}")
    env.setdefault("VEIL_PUBLIC_GATEWAY_URL", f"http://localhost:{ports['dataplane']}")
    # Every API on its own origin, http://<slug>.localhost:8000/ (browsers and curl
    # resolve *.localhost to loopback); the path form stays on localhost:8000.
    env.setdefault("VEIL_API_DOMAIN", "localhost")

    become_subreaper()
    children = ChildSet(data_dir)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not env.get("VEIL_REDIS_URL"):
            redis_port = _port("VEIL_REDIS_PORT", 6379)
            redis_dir = data_dir / "redis"
            redis_dir.mkdir(exist_ok=True)
            password = env["VEIL_REDIS_PASSWORD"]
            config = write_config(redis_dir, redis_port, password, persistent=True)
            children.start(Child("redis", ["redis-server", str(config)]), env)
            env["VEIL_REDIS_URL"] = redis_url(redis_port, password)
            wait_redis(env["VEIL_REDIS_URL"], children)

        print("[veil] applying database migrations", flush=True)
        subprocess.run(  # noqa: S603  # our own interpreter and module
            [sys.executable, "-m", "shared.migrate", _database_url(env, data_dir)],
            check=True,
            env=env,
            cwd=ROOT,
        )

        uvicorn = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "--host",
            host,
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
        ]
        services = [
            ("gateway", "gateway.app:create_app", ports["gateway"]),
            ("dataplane", "gateway.dataplane.app:create_app", ports["dataplane"]),
            ("executor", "executor.app:create_app", ports["executor"]),
            ("analytics", "analytics.app:create_app", ports["analytics"]),
        ]
        workers = _dataplane_workers(env)
        for name, factory, port in services:
            if name == "dataplane":  # every worker learns the count: it shares limits out
                argv = dataplane_command(factory, host, port, workers)
                plane_env = {**env, "VEIL_DATAPLANE_WORKERS": str(workers)}
                children.start(Child(name, argv), plane_env)
                continue
            children.start(Child(name, [*uvicorn, factory, "--port", str(port)]), env)
        children.start(Child("worker", [sys.executable, "-m", "executor.worker"]), env)
        # The build sandboxes' only way to the package indexes (executor/build_proxy.py).
        children.start(Child("build-proxy", [sys.executable, "-m", "executor.build_proxy"]), env)
        for name, _factory, port in services:
            wait_http(f"http://127.0.0.1:{port}/healthz", name, children)

        print(
            "\n[veil] Veil is running\n"
            f"  gateway API + UI  http://localhost:{ports['gateway']}/   (docs: /docs)\n"
            f"  data plane        http://<api-slug>.localhost:{ports['dataplane']}/<path>"
            f"  (or localhost:{ports['dataplane']}/<api-slug>/<path>)\n"
            f"  executor          http://localhost:{ports['executor']}/docs  (internal)\n"
            f"  analytics         http://localhost:{ports['analytics']}/docs  (internal)\n"
            f"  data              {data_dir}\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        # A supervisor from here on: a service that dies is started again (with
        # back-off) while the others keep serving; only a signal stops everything.
        while not stopping:
            children.supervise()
            time.sleep(0.3)
        return 0
    except RuntimeError as exc:
        print(f"[veil] {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("[veil] stopping", flush=True)
        children.stop_all()


def _dataplane_workers(env: dict[str, str]) -> int:
    """VEIL_DATAPLANE_WORKERS (DataPlaneSettings.dataplane_workers); unset: one per core, ≤ 4."""
    value = env.get("VEIL_DATAPLANE_WORKERS", "").strip()
    if not value:
        return max(1, min(os.cpu_count() or 1, 4))
    if not value.isdigit() or int(value) < 1:
        raise RuntimeError(f"VEIL_DATAPLANE_WORKERS must be a whole number ≥ 1, not {value!r}")
    return int(value)


def dataplane_command(factory: str, host: str, port: int, workers: int) -> list[str]:
    """The data plane on granian: `workers` processes sharing one listening socket.

    Against uvicorn --workers (uvloop, httptools) the server's own cost per request
    is about half, and proxied calls are no slower (docs/benchmarks.md). Each worker
    runs the ASGI lifespan (startup before it accepts a connection, shutdown on
    exit); a worker whose startup fails exits and takes granian down with a non-zero
    code, so the launcher's /healthz wait fails instead of serving with fewer
    workers. A worker
    stuck in shutdown is killed after 5 s, before the launcher's own SIGKILL of
    granian could orphan it.
    """
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--backlog",
        "4096",
        "--workers-kill-timeout",
        "5",
        "--no-access-log",
        factory,
    ]


def _database_url(env: dict[str, str], data_dir: Path) -> str:
    return env.get("VEIL_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'veil.db'}"


if __name__ == "__main__":
    sys.exit(main())
