"""The runtime registry: container commands, build args, and what goes into a build context."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

from executor.build_context import prepare_context
from gateway.uploads.service import SUPPORTED_RUNTIMES
from runtimes.registry import (
    IMAGE_LABEL_ARGS,
    RUNTIMES,
    SHIM_DIR,
    go_package,
    runtime_spec,
    validated_entry,
)
from shared.archive import ArchiveLimits
from shared.settings import ExecutorSettings

REPO = Path(__file__).resolve().parents[2]


def settings(**overrides: object) -> ExecutorSettings:
    return ExecutorSettings(
        jwt_secret="x",
        service_token="y",
        secrets_key="z" * 16,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("runtime", "contract", "entry", "command"),
    [
        ("python", "server", "main.py", ["python3", "/app/main.py"]),
        ("python", "server", "app/server.py", ["python3", "/app/app/server.py"]),
        (
            "python",
            "handler",
            "handler.py",
            ["python3", "/opt/veil/shim/veil_shim.py", "/app/handler.py"],
        ),
        ("node", "server", "index.js", ["node", "/app/index.js"]),
        ("node", "server", "dist/server.js", ["node", "/app/dist/server.js"]),
        (
            "node",
            "handler",
            "handler.js",
            ["node", "/opt/veil/shim/veil_shim.cjs", "/app/handler.js"],
        ),
        ("go", "server", "main.go", ["/app/server"]),
        ("go", "server", "cmd/api/main.go", ["/app/server"]),
        ("go", "handler", "handler.go", ["/app/server"]),
    ],
)
def test_command_is_a_fixed_argv(
    runtime: str, contract: str, entry: str, command: list[str]
) -> None:
    assert runtime_spec(runtime).command(contract, entry) == command


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "../main.py",
        "app/../../main.py",
        "/etc/passwd",
        "./main.py",
        "app//main.py",
        "app/",
        "-m.py",
        "--help",
        "main.py; rm -rf /",
        "$(id).py",
        "my app.py",
        "main.py\n",
        "mäin.py",
    ],
)
@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_command_refuses_unsafe_entries(runtime: str, entry: str) -> None:
    with pytest.raises(ValueError, match="unsafe entry"):
        runtime_spec(runtime).command("server", entry)
    with pytest.raises(ValueError, match="unsafe entry"):
        runtime_spec(runtime).command("handler", entry)


def test_unknown_contract_and_runtime_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown contract"):
        runtime_spec("python").command("lambda", "main.py")
    with pytest.raises(ValueError, match="unknown runtime"):
        runtime_spec("ruby")
    with pytest.raises(ValueError, match="unknown contract"):
        runtime_spec("go").install_env(settings(), "Server", "main.go")


def test_validated_entry_and_go_package() -> None:
    assert validated_entry("cmd/api/main.go") == "cmd/api/main.go"
    assert go_package("main.go") == "."
    assert go_package("cmd/api/main.go") == "./cmd/api"
    with pytest.raises(ValueError, match="unsafe entry"):
        go_package("../main.go")


def test_buildargs_name_the_configured_base_image() -> None:
    custom = settings(
        python_base_image="python:3.11-slim",
        node_base_image="node:18-bookworm-slim",
        go_base_image="golang:1.22-bookworm",
        go_proxy="https://proxy.golang.org,direct",
    )
    labels = {"veil.platform": "veil", "veil.instance": "i1", "veil.api_id": "a1"}
    label_args = {
        "VEIL_PLATFORM": "veil",
        "VEIL_INSTANCE": "i1",
        "VEIL_API_ID": "a1",
        "VEIL_API_SLUG": "",
    }
    assert runtime_spec("python").buildargs(custom, labels) == {
        "BASE_IMAGE": "python:3.11-slim",
        **label_args,
    }
    assert runtime_spec("node").buildargs(custom, labels) == {
        "BASE_IMAGE": "node:18-bookworm-slim",
        **label_args,
    }
    assert runtime_spec("go").buildargs(custom, labels) == {
        "BASE_IMAGE": "golang:1.22-bookworm",
        **label_args,
    }
    # What the Go compile in the build sandbox is told, as validated values.
    assert runtime_spec("go").install_env(custom, "server", "cmd/api/main.go") == {
        "VEIL_CONTRACT": "server",
        "VEIL_PACKAGE": "./cmd/api",
        "VEIL_GOPROXY": "https://proxy.golang.org,direct",
    }
    assert runtime_spec("python").install_env(custom, "server", "main.py") == {}
    assert settings().go_proxy == "off"
    # A label no Dockerfile has an argument for is refused, not silently dropped.
    with pytest.raises(ValueError, match="no build arg carries the image labels"):
        runtime_spec("python").buildargs(custom, {"veil.version": "3"})


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_image_labels_are_one_label_step_before_the_code(name: str) -> None:
    """One LABEL, fed by build args and cached per API; the code is the last step."""
    dockerfile = RUNTIMES[name].dockerfile.read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    instructions = [
        line.split()[0]
        for line in final_stage.splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    ]
    assert instructions[-1] in ("COPY", "ADD")  # the code (Go: the binary, its only code)
    assert instructions[-2] == "LABEL"
    assert instructions.count("LABEL") == 1
    for label, arg in IMAGE_LABEL_ARGS.items():
        assert f'{label}="${{{arg}}}"' in final_stage


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_each_runtime_is_complete_and_consistent(name: str) -> None:
    spec = RUNTIMES[name]
    assert spec.name == name
    dockerfile = spec.dockerfile.read_text()
    # Every argument the Dockerfile is given is declared by it (no "not consumed" noise).
    for arg in spec.buildargs(settings(), {}):
        assert re.search(rf"^ARG {arg}\b", dockerfile, re.MULTILINE), arg
    # The shim is copied where the handler command expects it, and the command's
    # shim file exists in runtimes/<name>/shim.
    # (Go compiles its shim into the binary in the build sandbox instead.)
    if "shim" in spec.install_inputs:
        assert "/veil/in/shim/" in spec.install_script.read_text()
    else:
        assert f"COPY shim/ {SHIM_DIR}/" in dockerfile
    for part in spec.command("handler", "handler.x"):
        if part.startswith(SHIM_DIR + "/"):
            assert (spec.shim_dir / part.removeprefix(SHIM_DIR + "/")).is_file()
    # The sandbox's install script reads every manifest, and the image takes its output.
    install = spec.install_script.read_text()
    for manifest in spec.manifests:
        assert manifest in install or "/veil/in/src/" in install, manifest
    for name in spec.install_inputs:
        assert f"/veil/in/{name}" in install, name
    assert spec.install_output in install
    assert "ADD deps.tar " in dockerfile
    # No step of the image build runs anything but Veil's own setuid sweep.
    runs = [line for line in dockerfile.splitlines() if line.startswith("RUN ")]
    assert runs in ([], ["RUN find / -xdev -type f -perm /6000 -exec chmod ug-s {} +"]), runs
    # The base image setting exists, and its default is what base_images.sh builds.
    field = ExecutorSettings.model_fields[spec.base_image_setting]
    env = f"VEIL_{spec.base_image_setting.upper()}"
    script = (REPO / "runtimes" / "base_images.sh").read_text()
    assert f'"${{{env}:-{field.default}}}"' in script
    assert f"ARG BASE_IMAGE={field.default}\n" in dockerfile


def test_the_gateway_accepts_every_runtime_the_executor_builds() -> None:
    assert set(SUPPORTED_RUNTIMES) == set(RUNTIMES)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("runtime", "files", "manifests"),
    [
        ("python", {"main.py": b"", "requirements.txt": b"six\n"}, {"requirements.txt": b"six\n"}),
        ("python", {"handler.py": b""}, {"requirements.txt": b""}),
        (
            "node",
            {"index.js": b"", "package.json": b"{}", "package-lock.json": b"{ }"},
            {"package.json": b"{}", "package-lock.json": b"{ }"},
        ),
        ("node", {"handler.js": b""}, {"package.json": b"", "package-lock.json": b""}),
        ("go", {"main.go": b"", "go.mod": b"module x\n"}, {"go.mod": b"module x\n", "go.sum": b""}),
    ],
)
def test_prepare_context_copies_manifests_and_the_shim(
    tmp_path: Path, runtime: str, files: dict[str, bytes], manifests: dict[str, bytes]
) -> None:
    # The user's files named like Veil's context entries stay inside src/.
    hostile = {"Dockerfile": b"FROM evil", "shim/veil_shim.py": b"evil", "build-ca.crt": b"evil"}
    upload = tmp_path / "app.zip"
    upload.write_bytes(_zip(files | hostile))
    context = tmp_path / "context"
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    prepare_context(context, upload, "app.zip", runtime, ca, ArchiveLimits())

    spec = runtime_spec(runtime)
    for name, content in manifests.items():
        assert (context / name).read_bytes() == content
    assert (context / "Dockerfile").read_bytes() == spec.dockerfile.read_bytes()
    assert (context / "build-ca.crt").read_bytes() == ca.read_bytes()
    assert (context / "src" / "Dockerfile").read_bytes() == b"FROM evil"
    shim_files = sorted(
        p.relative_to(spec.shim_dir).as_posix()
        for p in spec.shim_dir.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert shim_files
    copied = sorted(
        p.relative_to(context / "shim").as_posix()
        for p in (context / "shim").rglob("*")
        if p.is_file()
    )
    assert copied == shim_files
    for name in shim_files:
        assert (context / "shim" / name).read_bytes() == (spec.shim_dir / name).read_bytes()
