"""Every runtime Veil builds, in one place.

For each runtime: its static Dockerfile, the `ExecutorSettings` field naming its
base image, the dependency manifests copied to the build-context root, its
handler shim, the build args its Dockerfile takes and the command the container
runs. The executor passes only values from here to Docker: validated entry
paths and fixed strings, never shell text.

Build context (assembled by `executor.build_context.prepare_context`)::

    Dockerfile     runtimes/<runtime>/Dockerfile, verbatim
    <manifests>    e.g. package.json, package-lock.json: the user's, or empty files
    build-ca.crt   the CA bundle trusted during dependency installation (may be empty)
    shim/          runtimes/<runtime>/shim/: Veil's files, outside the user's src/
    src/           the user's project root
    deps.tar       what runtimes/<runtime>/install.sh produced in the build
                   sandbox (executor/dependencies.py), sanitised

Every step that can run tenant code (a dependency install, a compile) runs in
the build sandbox, as `install.sh` with the `install_*` fields below; the image
build only copies files. In the image the user's project is /app and the shim
/opt/veil/shim, which no user file can replace. Go is compiled in the sandbox;
its image holds /app/server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from shared.settings import ExecutorSettings

Contract = Literal["server", "handler"]
CONTRACTS: tuple[Contract, ...] = ("server", "handler")

RUNTIMES_DIR = Path(__file__).resolve().parent
APP_DIR = "/app"
SHIM_DIR = "/opt/veil/shim"  # where every Dockerfile copies the context's shim/

# Same rule as runtimes.detect: a conservative charset, no leading '-', no '..'.
_ENTRY = re.compile(r"[A-Za-z0-9._/-]+")

# The image's labels reach it as build args of one LABEL instruction, just before
# the code, in every Dockerfile. Not as the build API's `labels`: Docker's classic
# builder appends those as one step (a container created and committed) per label,
# on every build. They are the same for every build of an API, so a code-only
# change reuses the LABEL step from cache; the version is in the image's tag.
IMAGE_LABEL_ARGS = {
    "veil.platform": "VEIL_PLATFORM",
    "veil.instance": "VEIL_INSTANCE",
    "veil.api_id": "VEIL_API_ID",
    "veil.api_slug": "VEIL_API_SLUG",
}


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    base_image_setting: str  # the ExecutorSettings field naming the base image
    manifests: tuple[str, ...]  # copied from the project root to the context root
    server_command: tuple[str, ...]  # argv prefix; the entry path is appended (if any)
    handler_command: tuple[str, ...]  # argv prefix; the entry path is appended (if any)
    # The build sandbox: what install.sh writes (tarred into deps.tar), the
    # writable paths it needs besides /tmp and /veil, the context entries it reads
    # from /veil/in, and whether its result depends on the manifests alone (so one
    # install serves every build with the same ones).
    install_output: str
    install_mounts: tuple[str, ...]
    install_inputs: tuple[str, ...]
    install_cacheable: bool
    entry_in_command: bool = True  # False for compiled runtimes: the binary is fixed

    @property
    def directory(self) -> Path:
        return RUNTIMES_DIR / self.name

    @property
    def dockerfile(self) -> Path:
        return self.directory / "Dockerfile"

    @property
    def shim_dir(self) -> Path:
        return self.directory / "shim"

    @property
    def install_script(self) -> Path:
        return self.directory / "install.sh"

    def needs_install(self, context_dir: Path) -> bool:
        """Whether this build has anything for the sandbox to do (Go always compiles)."""
        if not self.install_cacheable:
            return True
        return (context_dir / self.manifests[0]).stat().st_size > 0

    def install_env(self, settings: ExecutorSettings, contract: str, entry: str) -> dict[str, str]:
        """Validated values install.sh reads from its environment."""
        if self.name != "go":
            return {}
        return {
            "VEIL_CONTRACT": _contract(contract),
            "VEIL_PACKAGE": go_package(entry),
            "VEIL_GOPROXY": settings.go_proxy,
        }

    def install_needs_network(self, settings: ExecutorSettings) -> bool:
        return self.name != "go" or settings.go_proxy != "off"

    def base_image(self, settings: ExecutorSettings) -> str:
        value = getattr(settings, self.base_image_setting)
        if not isinstance(value, str) or not value:
            raise ValueError(f"setting {self.base_image_setting} must name an image")
        return value

    def command(self, contract: str, entry: str) -> list[str]:
        """The container's argv for a `contract` project whose entry file is `entry`."""
        entry = validated_entry(entry)
        prefix = self.server_command if _contract(contract) == "server" else self.handler_command
        if not self.entry_in_command:
            return list(prefix)
        return [*prefix, f"{APP_DIR}/{entry}"]

    def buildargs(self, settings: ExecutorSettings, labels: Mapping[str, str]) -> dict[str, str]:
        """Build args for this runtime's Dockerfile (only those it declares).

        `labels` become the image's labels (see IMAGE_LABEL_ARGS); a label the
        Dockerfiles have no argument for is refused rather than dropped.
        """
        unknown = sorted(set(labels) - set(IMAGE_LABEL_ARGS))
        if unknown:
            raise ValueError(f"no build arg carries the image labels {unknown}")
        args = {"BASE_IMAGE": self.base_image(settings)}
        args |= {arg: labels.get(label, "") for label, arg in IMAGE_LABEL_ARGS.items()}
        return args


RUNTIMES: dict[str, RuntimeSpec] = {
    "python": RuntimeSpec(
        name="python",
        base_image_setting="python_base_image",
        manifests=("requirements.txt",),
        server_command=("python3",),
        handler_command=("python3", f"{SHIM_DIR}/veil_shim.py"),
        install_output="/opt/veil/venv",
        install_mounts=("/opt/veil/venv",),
        install_inputs=("requirements.txt", "build-ca.crt"),
        install_cacheable=True,
    ),
    "node": RuntimeSpec(
        name="node",
        base_image_setting="node_base_image",
        manifests=("package.json", "package-lock.json"),
        server_command=("node",),
        handler_command=("node", f"{SHIM_DIR}/veil_shim.cjs"),
        install_output="/app/node_modules",
        install_mounts=("/app",),
        install_inputs=("package.json", "package-lock.json", "build-ca.crt"),
        install_cacheable=True,
    ),
    "go": RuntimeSpec(
        name="go",
        base_image_setting="go_base_image",
        manifests=("go.mod", "go.sum"),
        server_command=(f"{APP_DIR}/server",),
        handler_command=(f"{APP_DIR}/server",),
        install_output="/veil/out",
        install_mounts=(),
        install_inputs=("src", "shim", "build-ca.crt"),
        install_cacheable=False,
        entry_in_command=False,
    ),
}


def runtime_spec(runtime: str) -> RuntimeSpec:
    try:
        return RUNTIMES[runtime]
    except KeyError:
        raise ValueError(f"unknown runtime {runtime!r}") from None


def validated_entry(entry: str) -> str:
    """The entry path if it is a safe relative path inside the project, else ValueError."""
    parts = entry.split("/")
    if (
        not _ENTRY.fullmatch(entry)
        or entry.startswith("-")
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(f"unsafe entry path {entry!r}")
    return entry


def go_package(entry: str) -> str:
    """The package `go build` compiles for an entry file: "." or "./cmd/api"."""
    parent = PurePosixPath(validated_entry(entry)).parent.as_posix()
    return "." if parent == "." else f"./{parent}"


def _contract(contract: str) -> Contract:
    for known in CONTRACTS:
        if contract == known:
            return known
    raise ValueError(f"unknown contract {contract!r}")
