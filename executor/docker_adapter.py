"""The one place that talks to the Docker Engine.

Everything else in Veil sees plain dataclasses and Veil errors: docker-py's
exceptions are translated here (the way docker-py itself funnels HTTP errors
through one `create_api_error_from_http_exception`).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker.types import LogConfig, Ulimit
from requests.exceptions import ConnectionError as RequestsConnectionError

from shared.errors import NotFound, ServiceUnavailable, VeilError
from shared.procfs import stat_fields

if TYPE_CHECKING:
    from executor.docker_sandbox import Sandbox, SandboxSpec

PLATFORM_LABEL = "veil.platform"
CPU_PERIOD_US = 100_000  # the CFS default period


def cpu_quota_us(cpus: float) -> int:
    """CFS quota per period for a limit of `cpus` (1.5 → 150 ms of CPU time per 100 ms)."""
    return max(1000, int(cpus * CPU_PERIOD_US))


class BuildFailed(VeilError):
    status = 422
    code = "build_failed"


class DockerUnavailable(ServiceUnavailable):
    code = "docker_unavailable"


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    name: str
    command: list[str]
    labels: dict[str, str]
    network: str
    env: dict[str, str] = field(default_factory=dict, repr=False)  # holds decrypted secrets
    user: str = "10001:10001"
    memory_mb: int = 256
    cpus: float = 0.5
    pids_limit: int = 128
    nofile: int = 1024
    tmpfs_mb: int = 64
    log_max_size: str = "1m"
    log_max_files: int = 2


@dataclass(frozen=True)
class ContainerState:
    status: str  # created | running | exited | dead | ...
    running: bool
    exit_code: int
    oom_killed: bool
    error: str
    finished_at: datetime | None = None  # when it last stopped (None: never)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], status: str = "") -> ContainerState:
        """From the engine's `State` object of a container."""
        return cls(
            status=str(attrs.get("Status", status)),
            running=bool(attrs.get("Running")),
            exit_code=int(attrs.get("ExitCode", 0)),
            oom_killed=bool(attrs.get("OOMKilled")),
            error=str(attrs.get("Error", "")),
            finished_at=parse_engine_time(str(attrs.get("FinishedAt", ""))),
        )


def stopped_from_outside(state: ContainerState, engine_started_at: datetime | None) -> bool:
    """Whether a dead container was stopped by something other than its own app.

    The engine going down (a dockerd restart, a host reboot: the container
    finished before the engine now running started), or a signal from outside
    (`docker stop`, `docker kill`, an admin: exit 143 or 137) that was not the
    kernel's OOM killer. Those are not the app's failures and must not push it
    towards crash-looping.
    """
    if state.oom_killed:
        return False
    finished, engine = state.finished_at, engine_started_at
    if finished is not None and engine is not None and finished <= engine:
        return True
    return state.exit_code in (128 + 9, 128 + 15)


def parse_engine_time(value: str) -> datetime | None:
    """The engine's RFC 3339 times carry nanoseconds; "0001-01-01T00:00:00Z" is never."""
    if not value or value.startswith("0001-"):
        return None
    whole, _, fraction = value.rstrip("Z").partition(".")
    try:
        parsed = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    except ValueError:
        return None
    return parsed.replace(microsecond=int((fraction[:6] or "0").ljust(6, "0")))


@dataclass(frozen=True)
class ContainerUsage:
    cpu_percent: float  # of one CPU: 50.0 is half a core
    memory_bytes: int
    memory_limit_bytes: int
    pids: int


def _usage_from_stats(stats: dict[str, Any]) -> ContainerUsage:
    """docker stats' CPU formula: container delta over system delta, times online CPUs."""
    cpu, pre = stats.get("cpu_stats", {}), stats.get("precpu_stats", {})
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or [1])
    percent = (cpu_delta / system_delta) * online * 100.0 if system_delta > 0 else 0.0
    memory = stats.get("memory_stats", {})
    cache = memory.get("stats", {}).get("cache", 0)  # page cache is not the app's memory
    return ContainerUsage(
        cpu_percent=round(max(percent, 0.0), 2),
        memory_bytes=max(int(memory.get("usage", 0)) - int(cache), 0),
        memory_limit_bytes=int(memory.get("limit", 0)),
        pids=int(stats.get("pids_stats", {}).get("current", 0)),
    )


@dataclass(frozen=True)
class ManagedContainer:
    id: str
    name: str
    labels: dict[str, str]
    state: ContainerState
    created_at: datetime | None = None


def deployment_container(client: docker.DockerClient, deployment_id: str) -> Any:
    """The docker-py container of a deployment, found by its label (names are opaque:
    executor.deploy.container_name); docker.errors.NotFound when there is none. For
    tests and benchmarks, which hold a docker-py client of their own."""
    found = client.containers.list(
        all=True, filters={"label": f"veil.deployment_id={deployment_id}"}
    )
    if not found:
        raise docker.errors.NotFound(f"no container for deployment {deployment_id}")
    return found[0]


@contextmanager
def translated(action: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.NotFound as exc:
        raise NotFound(f"{action}: {exc.explanation or exc}", code="docker_not_found") from exc
    except (docker.errors.DockerException, RequestsConnectionError) as exc:
        if isinstance(exc, docker.errors.APIError) and exc.status_code and exc.status_code < 500:
            raise VeilError(f"{action}: {exc.explanation or exc}", code="docker_error") from exc
        raise DockerUnavailable(f"{action}: the Docker Engine is not available ({exc}).") from exc


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STEP_CONTAINER = re.compile(r"^ ---> Running in ([0-9a-f]{12,64})$")


class _BuildWatch:
    """Holds the build's streaming HTTP response so that a timer can cut it.

    docker-py's build() hides its response, so a requests response hook (a public
    requests API) remembers it, per thread. Shutting the socket down wakes the
    reader at once, and the engine cancels a build whose client went away.
    """

    def __init__(self, api: Any) -> None:
        self._api = api
        self._thread = threading.get_ident()
        self._response: Any = None
        self._lock = threading.Lock()
        self.was_cut = False
        api.hooks["response"].append(self._remember)

    def _remember(self, response: Any, *args: Any, **kwargs: Any) -> None:
        if threading.get_ident() == self._thread and "/build" in response.request.path_url:
            with self._lock:
                self._response = response

    def cut(self) -> None:
        with self._lock:
            response = self._response
            self.was_cut = True
        raw = getattr(response, "raw", None)
        connection = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        """Unhook and close the response (its socket too, however the build ended)."""
        with suppress(ValueError):
            self._api.hooks["response"].remove(self._remember)
        if self._response is not None:
            self._response.close()


class DockerAdapter:
    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client

    @classmethod
    def from_env(cls, timeout: int = 120) -> DockerAdapter:
        with translated("connect to Docker"):
            client = docker.from_env(timeout=timeout)
            client.ping()
        return cls(client)

    def close(self) -> None:
        self._client.close()

    def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        """A bridge for function containers where containers cannot talk to each other."""
        with translated("create network"):
            if self._client.networks.list(names=[name]):
                return
            try:
                self._client.networks.create(
                    name,
                    driver="bridge",
                    labels=labels,
                    options={"com.docker.network.bridge.enable_icc": "false"},
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # created concurrently by another worker
                    raise

    def network_gateway(self, name: str) -> str:
        """The host's address on a bridge network (its gateway)."""
        with translated("inspect network"):
            config = self._client.networks.get(name).attrs["IPAM"]["Config"][0]
        return str(config["Gateway"])

    def bridge_name(self, name: str) -> str:
        """The host interface of a bridge network (what the host firewall matches)."""
        with translated("inspect network"):
            attrs = self._client.networks.get(name).attrs
        options = attrs.get("Options") or {}
        return str(options.get("com.docker.network.bridge.name") or f"br-{attrs['Id'][:12]}")

    def build(
        self,
        context_dir: Path,
        tag: str,
        buildargs: dict[str, str],
        memory_mb: int,
        timeout_seconds: float,
        on_log: Callable[[str], None],
    ) -> str:
        """Build and return the image id; stream each output line to `on_log`.

        At `timeout_seconds` the build's connection is cut (silent steps included):
        the engine then kills the step's container, so nothing keeps running.
        No `labels` argument: the classic builder would add a step (a container
        created and committed) per label to every build; the runtimes' Dockerfiles
        set their labels from build args instead (runtimes/registry.py).
        """
        memory = memory_mb * 1024 * 1024
        image_id: str | None = None
        step_containers: list[str] = []  # for telling an OOM kill from other failures
        since = int(time.time())
        watch = _BuildWatch(self._client.api)
        with translated("build image"):
            stream = self._client.api.build(
                path=str(context_dir),
                tag=tag,
                buildargs=buildargs,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                container_limits={"memory": memory, "memswap": memory},
                timeout=None,  # the watch enforces the limit; steps may be silent for long
            )
            timer = threading.Timer(timeout_seconds, watch.cut)
            timer.daemon = True
            timer.start()
            try:
                for chunk in stream:
                    if "stream" in chunk:
                        for line in ANSI_ESCAPE.sub("", str(chunk["stream"])).splitlines():
                            if line.strip():
                                on_log(line)
                            if match := _STEP_CONTAINER.match(line):
                                step_containers.append(match.group(1))
                    if "aux" in chunk and isinstance(chunk["aux"], dict):
                        image_id = chunk["aux"].get("ID", image_id)
                    if "error" in chunk:
                        message = str(chunk["error"]).strip()
                        on_log(message)
                        if self.oom_killed(step_containers, since):
                            raise BuildFailed(
                                f"The build ran out of memory (limit {memory_mb} MB) and was"
                                f" killed: {message}",
                                code="build_out_of_memory",
                            )
                        raise BuildFailed(f"The build failed: {message}")
            except Exception as exc:
                if watch.was_cut:
                    raise BuildFailed(
                        f"The build took longer than {timeout_seconds:g} s and was stopped.",
                        code="build_timeout",
                    ) from exc
                raise
            finally:
                timer.cancel()
                watch.release()
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            if watch.was_cut:
                raise BuildFailed(
                    f"The build took longer than {timeout_seconds:g} s and was stopped.",
                    code="build_timeout",
                )
            if image_id is None:
                image_id = self._client.images.get(tag).id
        return image_id

    def oom_killed(self, step_containers: list[str], since: int) -> bool:
        """Did the kernel OOM-kill a process in one of these (build step) containers since then?

        A killed child often surfaces as the parent's exit 1 (npm, pip), so the exit
        code cannot tell; the engine's `oom` events can.
        """
        if not step_containers:
            return False
        with translated("read engine events"):
            events = self._client.api.events(
                since=since, until=int(time.time()) + 1, filters={"event": "oom"}, decode=True
            )
            try:
                ids = [str(event.get("id", "")) for event in events]
            finally:
                events.close()
        return any(i.startswith(step) for i in ids for step in step_containers)

    def run(self, spec: ContainerSpec) -> str:
        """Start a container with the platform's baseline restrictions (docs/security.md)."""
        memory = f"{spec.memory_mb}m"
        with translated("start container"):
            container = self._client.containers.run(
                spec.image,
                spec.command,
                name=spec.name,
                detach=True,
                user=spec.user,
                environment=spec.env,
                labels=spec.labels,
                network=spec.network,
                read_only=True,
                tmpfs={"/tmp": f"rw,noexec,nosuid,nodev,size={spec.tmpfs_mb}m"},  # noqa: S108
                cap_drop=["ALL"],
                security_opt=["no-new-privileges:true"],
                pids_limit=spec.pids_limit,
                mem_limit=memory,
                memswap_limit=memory,  # swap equal to memory: no swap on top
                # Period and quota rather than nano_cpus: docker-py can update
                # only these in place (the start-up CPU boost relies on it).
                cpu_period=CPU_PERIOD_US,
                cpu_quota=cpu_quota_us(spec.cpus),
                ulimits=[Ulimit(name="nofile", soft=spec.nofile, hard=spec.nofile)],
                log_config=LogConfig(
                    type="json-file",
                    config={"max-size": spec.log_max_size, "max-file": str(spec.log_max_files)},
                ),
                init=True,
                ipc_mode="private",
            )
        return str(container.id)

    def wait_for_change(self, labels: dict[str, str], within: float) -> None:
        """Return at the first death of a container carrying `labels`, as soon as the
        engine's event stream breaks (the engine going down), or after `within` s."""
        since = time.time()
        filters = {
            "type": "container",
            "event": ["die", "oom"],
            "label": [f"{k}={v}" for k, v in labels.items()],
        }
        try:
            events = self._client.api.events(
                since=since, until=since + max(within, 0.5), filters=filters, decode=True
            )
            try:
                for _event in events:
                    return
            finally:
                events.close()
        except (docker.errors.DockerException, RequestsConnectionError, OSError, ValueError):
            return  # the engine is away: the caller's pass says so, and retries

    def engine_started_at(self) -> datetime | None:
        """When the engine now running started, if it runs on this host and says so.

        From the pid file of a local dockerd and /proc (the API does not tell);
        None for a remote engine or one this process cannot see.
        """
        try:
            pid = int(Path("/var/run/docker.pid").read_text().strip())
            ticks = int(stat_fields(pid)[19])
            boot = next(
                int(line.split()[1])
                for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime ")
            )
        except (OSError, ValueError, IndexError, StopIteration):
            return None
        return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)

    def set_cpus(self, container_id: str, cpus: float) -> None:
        """Change a running container's CPU limit (the CFS quota) in place."""
        with translated("update container"):
            self._client.api.update_container(
                container_id, cpu_period=CPU_PERIOD_US, cpu_quota=cpu_quota_us(cpus)
            )

    def ip_address(self, container_id: str, network: str) -> str:
        with translated("inspect container"):
            container = self._client.containers.get(container_id)
            networks = container.attrs["NetworkSettings"]["Networks"]
            return str(networks[network]["IPAddress"])

    def state(self, container_id: str) -> ContainerState:
        with translated("inspect container"):
            attrs: dict[str, Any] = self._client.api.inspect_container(container_id)["State"]
        return ContainerState.from_attrs(attrs)

    def logs(self, container_id: str, tail: int) -> str:
        with translated("read container logs"):
            raw = self._client.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        return bytes(raw).decode("utf-8", "replace")

    def remove_container(self, container_id: str, stop_timeout: int = 5) -> None:
        """Stop (SIGTERM, then SIGKILL after `stop_timeout`) and remove; gone already is fine."""
        try:
            with translated("remove container"):
                container = self._client.containers.get(container_id)
                if container.status == "running":
                    container.stop(timeout=stop_timeout)
                container.remove(force=True)
        except NotFound:
            return

    def find_containers(self, labels: dict[str, str]) -> list[str]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with translated("list containers"):
            return [c.id for c in self._client.containers.list(all=True, filters=filters)]

    def managed_containers(self, labels: dict[str, str]) -> list[ManagedContainer]:
        """Every container (running or not) carrying all of `labels`, with its state."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        out = []
        with translated("list containers"):
            for container in self._client.containers.list(all=True, filters=filters):
                attrs: dict[str, Any] = container.attrs.get("State", {})
                out.append(
                    ManagedContainer(
                        id=str(container.id),
                        name=str(container.name),
                        labels=dict(container.labels),
                        state=ContainerState.from_attrs(attrs, str(container.status)),
                        created_at=parse_engine_time(str(container.attrs.get("Created", ""))),
                    )
                )
        return out

    def usage(self, container_id: str) -> ContainerUsage:
        """One sample of live usage (takes about a second: the engine measures CPU over it)."""
        with translated("read container stats"):
            try:
                stats = self._client.api.stats(container_id, stream=False)
            except ValueError as exc:  # requests' JSONDecodeError: the engine sent no stats
                # A container being stopped or removed answers with an empty body.
                raise NotFound(
                    f"read container stats: no stats for {container_id[:12]} (stopping?)",
                    code="docker_not_found",
                ) from exc
        return _usage_from_stats(stats)

    def restart(self, container_id: str, stop_timeout: int = 5) -> None:
        with translated("restart container"):
            self._client.containers.get(container_id).restart(timeout=stop_timeout)

    def start_existing(self, container_id: str) -> None:
        with translated("start container"):
            self._client.containers.get(container_id).start()

    def find_images(self, labels: dict[str, str]) -> list[str]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with translated("list images"):
            return [i.id for i in self._client.images.list(filters=filters)]

    def tags_by_version(self, labels: dict[str, str], repository: str) -> dict[int, str]:
        """The tags `<repository>:v<N>` of the images carrying `labels`, keyed by N."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with translated("list images"):
            images = self._client.images.list(name=repository, filters=filters)
        out: dict[int, str] = {}
        for image in images:
            for tag in image.tags:
                name, _, version = tag.rpartition(":v")
                if name == repository and version.isdigit():
                    out[int(version)] = tag
        return out

    def remove_image(self, image: str) -> None:
        try:
            with translated("remove image"):
                self._client.images.remove(image, force=True, noprune=False)
        except NotFound:
            return

    def sandbox(self, spec: SandboxSpec) -> Sandbox:
        """Start a build sandbox (executor/docker_sandbox.py); the caller removes it."""
        from executor.docker_sandbox import Sandbox  # it builds on this module's helpers

        return Sandbox(self._client, spec)

    def image_id(self, image: str) -> str:
        with translated("inspect image"):
            return str(self._client.images.get(image).id)

    def image_exists(self, image: str) -> bool:
        try:
            with translated("inspect image"):
                self._client.images.get(image)
        except NotFound:
            return False
        return True
