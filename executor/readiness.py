"""Waiting until a freshly started container answers HTTP."""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

from executor.docker_adapter import ContainerState, DockerAdapter


@dataclass(frozen=True)
class NotReady:
    reason: str
    state: ContainerState | None


def probe_http(host: str, port: int, timeout: float = 0.5) -> bool:
    """Any HTTP answer counts (a 404 on `/` is a live app); a refused socket does not."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/", headers={"User-Agent": "veil-readiness"})
        connection.getresponse().read(0)
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_until_ready(
    docker: DockerAdapter,
    container_id: str,
    host: str,
    port: int,
    timeout_seconds: float,
    interval: float = 0.01,
    state_every: float = 0.1,
) -> NotReady | None:
    """Return None once the app answers, or why it never did (exited, or timed out).

    The probe goes first and often: a refused connection costs microseconds. The
    engine is asked whether the container still runs only every `state_every`
    seconds: an inspect costs far more than a probe, and the engine shares the
    CPU with the app that is booting.
    """
    deadline = time.monotonic() + timeout_seconds
    next_state = time.monotonic() + state_every
    while True:
        if probe_http(host, port):
            return None
        now = time.monotonic()
        if now >= next_state or now > deadline:
            state = docker.state(container_id)
            if not state.running:
                if state.oom_killed:
                    return NotReady(
                        "the app was killed for using more memory than its limit", state
                    )
                return NotReady(
                    f"the app exited with code {state.exit_code} during start-up", state
                )
            if now > deadline:
                return NotReady(
                    f"the app did not answer HTTP on port {port} within {timeout_seconds:g} s;"
                    " it must listen on 0.0.0.0:$PORT",
                    state,
                )
            next_state = now + state_every
        time.sleep(interval)
