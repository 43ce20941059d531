"""The build step that runs tenant code: dependencies installed (or Go compiled) in a sandbox.

`install_dependencies` fills a build context's `deps.tar` with what the
runtime's `install.sh` produced in a build sandbox (executor/docker_sandbox.py),
sanitised (executor/sandbox_output.py). The Dockerfile then only copies it in.

Python and Node installs depend on the manifests alone, so they are kept in
`<data_dir>/deps-cache/<key>.tar`, keyed on everything that goes into them (the
runtime, the base image's id, install.sh, the inputs, the network): a code-only
change reuses them without starting a sandbox, and their archive is byte-for-byte
the same, so Docker's cache reuses the image layer too.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from executor.docker_adapter import BuildFailed, DockerAdapter
from executor.docker_sandbox import Sandbox, SandboxSpec
from executor.sandbox_output import sanitize_tar
from runtimes.registry import RuntimeSpec, runtime_spec
from shared.settings import ExecutorSettings

INPUT_DIR = "/veil/in"
DEPS_ARCHIVE = "deps.tar"
_MB = 1024 * 1024


def install_dependencies(
    docker: DockerAdapter,
    settings: ExecutorSettings,
    runtime: str,
    context_dir: Path,
    *,
    contract: str,
    entry: str,
    name: str,
    labels: dict[str, str],
    deadline: float,
    on_log: Callable[[str], None],
) -> None:
    """Write `context_dir/deps.tar`; BuildFailed with the reason when the step fails.

    `name` is the sandbox container's name, `deadline` a time.monotonic() by
    which everything must be done (the build's time limit).
    """
    spec = runtime_spec(runtime)
    target = context_dir / DEPS_ARCHIVE
    if not spec.needs_install(context_dir):
        with target.open("wb") as out:
            sanitize_tar([_EMPTY_TAR], out, 0)
        return
    network = None if settings.build_network == "none" else settings.build_network
    if not spec.install_needs_network(settings):
        network = None
    cached: Path | None = None
    if spec.install_cacheable:
        key = _cache_key(docker, settings, spec, context_dir, network)
        cached = settings.data_dir / "deps-cache" / f"{key}.tar"
        if cached.is_file():
            os.utime(cached)  # newest first when the cache is pruned
            _link_or_copy(cached, target)
            on_log(f"Dependencies unchanged: reusing the install {key[:12]}.")
            return
    sandbox_spec = SandboxSpec(
        image=spec.base_image(settings),
        name=name,
        labels=labels | {"veil.role": "build"},
        network=network,
        memory_mb=settings.build_memory_limit_mb,
        disk_mb=settings.build_disk_limit_mb,
        cpus=settings.build_cpu_limit,
        pids_limit=settings.build_pids_limit,
        nofile=settings.nofile_limit,
        writable=spec.install_mounts,
        env=spec.install_env(settings, contract, entry) | _proxy_env(docker, settings, network),
    )
    _run_sandboxed(docker, settings, spec, sandbox_spec, context_dir, deadline, on_log)
    if cached is not None:
        _keep(target, cached, settings.deps_cache_max_mb * _MB)


def _run_sandboxed(
    docker: DockerAdapter,
    settings: ExecutorSettings,
    spec: RuntimeSpec,
    sandbox_spec: SandboxSpec,
    context_dir: Path,
    deadline: float,
    on_log: Callable[[str], None],
) -> None:
    remaining = deadline - time.monotonic()
    timeout = settings.build_timeout_seconds
    if remaining <= 0:
        raise _timed_out(timeout)
    on_log(
        f"[veil] {'Compiling' if spec.name == 'go' else 'Installing dependencies'} in a build"
        f" sandbox: uid 10001, no capabilities, {sandbox_spec.memory_mb} MB memory,"
        f" {sandbox_spec.disk_mb} MB disk, {sandbox_spec.cpus:g} CPU,"
        f" {'no network' if sandbox_spec.network is None else 'network ' + sandbox_spec.network}."
    )
    docker.remove_container(sandbox_spec.name, stop_timeout=0)  # a retried job's leftover
    since = int(time.time())
    sandbox = docker.sandbox(sandbox_spec)
    timer = threading.Timer(remaining, sandbox.remove)
    timer.daemon = True
    timer.start()
    try:
        with _inputs(spec, context_dir) as inputs:
            sandbox.put(inputs, INPUT_DIR)
        code = sandbox.run(["sh", f"{INPUT_DIR}/install.sh"], on_log)
        if sandbox.removed:
            raise _timed_out(timeout)
        if code != 0:
            raise _failure(docker, sandbox, since, code, spec)
        with tempfile.NamedTemporaryFile(dir=context_dir, delete=False) as out:
            sanitize_tar(sandbox.export(spec.install_output), out, sandbox_spec.disk_mb * _MB)
        if sandbox.removed:
            raise _timed_out(timeout)
        os.replace(out.name, context_dir / DEPS_ARCHIVE)
    except BuildFailed:
        if sandbox.removed and time.monotonic() >= deadline:
            raise _timed_out(timeout) from None
        raise
    finally:
        timer.cancel()
        sandbox.remove()


def _failure(
    docker: DockerAdapter, sandbox: Sandbox, since: int, code: int, spec: RuntimeSpec
) -> BuildFailed:
    what = "The Go build" if spec.name == "go" else "Installing the dependencies"
    s = sandbox.spec
    if docker.oom_killed([sandbox.id], since):
        return BuildFailed(
            f"{what} ran out of memory (limit {s.memory_mb} MB, plus {s.disk_mb} MB for its"
            " files) and was killed.",
            code="build_out_of_memory",
        )
    full = _full_mounts(sandbox)
    if full:
        return BuildFailed(
            f"{what} filled its disk limit ({s.disk_mb} MB) in {', '.join(full)}.",
            code="build_disk_limit",
        )
    return BuildFailed(f"{what} failed (exit code {code}); see the log above.")


def _full_mounts(sandbox: Sandbox) -> list[str]:
    """The sandbox's writable paths with (nearly) no space left."""
    lines: list[str] = []
    mounts = ["/tmp", "/veil", *sandbox.spec.writable]  # noqa: S108
    if sandbox.run(["df", "-P", "-k", *mounts], lines.append) != 0:
        return []
    full = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) >= 6 and fields[3].isdigit() and int(fields[3]) < 1024:
            full.append(fields[5])
    return full


def _proxy_env(
    docker: DockerAdapter, settings: ExecutorSettings, network: str | None
) -> dict[str, str]:
    """The build proxy (executor/build_proxy.py) for pip, npm and go: the only way out."""
    if network is None:
        return {}
    proxy = f"http://{docker.network_gateway(network)}:{settings.build_proxy_port}"
    names = ("HTTPS_PROXY", "https_proxy", "npm_config_https_proxy", "npm_config_proxy")
    return dict.fromkeys(names, proxy) | {"NO_PROXY": "", "no_proxy": ""}


def _timed_out(timeout: float) -> BuildFailed:
    return BuildFailed(
        f"The build took longer than {timeout:g} s and was stopped.", code="build_timeout"
    )


class _inputs:  # lower case: used like open(), as a context manager
    """A tar of the sandbox's inputs (Veil-made: the context's files and install.sh)."""

    def __init__(self, spec: RuntimeSpec, context_dir: Path) -> None:
        self._file: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        with tarfile.open(fileobj=self._file, mode="w") as archive:
            archive.add(spec.install_script, "install.sh", recursive=False)
            for name in spec.install_inputs:
                archive.add(context_dir / name, name)
        self._file.seek(0)

    def __enter__(self) -> BinaryIO:
        return self._file

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def _cache_key(
    docker: DockerAdapter,
    settings: ExecutorSettings,
    spec: RuntimeSpec,
    context_dir: Path,
    network: str | None,
) -> str:
    digest = hashlib.sha256()
    parts = [
        spec.name.encode(),
        docker.image_id(spec.base_image(settings)).encode(),
        str(network).encode(),
        spec.install_script.read_bytes(),
    ]
    parts += [(context_dir / name).read_bytes() for name in spec.install_inputs]
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _keep(archive: Path, cached: Path, max_bytes: int) -> None:
    """Store a copy of `archive` in the cache (atomically), then prune oldest-used first."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}")
    _link_or_copy(archive, tmp)
    os.replace(tmp, cached)  # two builds storing the same key: either copy wins, both whole
    entries = sorted(cached.parent.glob("*.tar"), key=_mtime, reverse=True)
    total = 0
    for path in entries:
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # pruned by a build finishing at the same time
            continue
        if total > max_bytes and path != cached:
            path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _link_or_copy(source: Path, target: Path) -> None:
    """Archives are never written after they are made, so a hard link is a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _empty_tar() -> bytes:
    buffer = io.BytesIO()
    tarfile.open(fileobj=buffer, mode="w").close()
    return buffer.getvalue()


_EMPTY_TAR = _empty_tar()
