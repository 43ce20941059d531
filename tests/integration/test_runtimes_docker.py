"""Every runtime and contract example, deployed through the real Deployer on real Docker.

Each test deploys a runtime's server and handler examples (runtimes/<lang>/examples),
checks the answer on the container endpoint, then redeploys a code-only change and
checks what the build cache reused. Deploy times are printed (pytest -s shows them).
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from redis.asyncio import Redis

from executor.deploy import Deployer
from executor.docker_adapter import deployment_container
from tests.integration.conftest import (
    create_api,
    deploy_and_wait,
    endpoint_of,
    signup,
    zip_bytes,
)

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "runtimes"
GO_IMAGE_MAX_BYTES = 20 * 1000 * 1000


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """SQLite only: building and running images does not depend on the database, and
    every docker test here costs seconds (the shared fixtures run on PostgreSQL too)."""
    return sqlite_database_url


def example_zip(runtime: str, contract: str, changes: dict[str, bytes] | None = None) -> bytes:
    """The example's files as a zip (README.md left out), with `changes` appended to files."""
    root = EXAMPLES / runtime / "examples" / contract
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            name = path.relative_to(root).as_posix()
            if path.is_file() and name != "README.md":
                archive.writestr(name, path.read_bytes() + (changes or {}).get(name, b""))
    return buffer.getvalue()


async def deploy_example(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    headers: dict[str, str],
    api_id: str,
    content: bytes,
    what: str,
    filename: str = "app.zip",
) -> tuple[dict[str, Any], str]:
    """Deploy, assert it runs, print the time; return the status and the endpoint."""
    started = time.monotonic()
    status = await deploy_and_wait(gateway, deployer, headers, api_id, content, filename)
    elapsed = time.monotonic() - started
    assert status["status"] == "running", status
    print(f"\n[deploy] {what}: {elapsed:.1f} s")
    return status, await endpoint_of(deployer, status["deployment_id"])


def build_log(deployer: Deployer, deployment_id: str) -> list[str]:
    path = deployer.settings.data_dir / "logs" / "builds" / f"{deployment_id}.log"
    return path.read_text("utf-8").splitlines()


def step_cached(log: list[str], needle: str) -> bool:
    """Whether the build step whose instruction contains `needle` came from the cache."""
    for i, line in enumerate(log):
        if line.startswith("Step ") and needle in line:
            return i + 1 < len(log) and "Using cache" in log[i + 1]
    raise AssertionError(f"no build step containing {needle!r} in:\n" + "\n".join(log))


async def check_handler_example(endpoint: str, runtime: str) -> None:
    """The Python and Node handler examples answer alike (GET greets, POST echoes JSON)."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{endpoint}/greet?name=veil&name=other")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {
            "hello": "veil",
            "runtime": runtime,
            "contract": "handler",
            "method": "GET",
            "path": "/greet",
        }
        echoed = await client.post(f"{endpoint}/echo", json={"n": [1, 2]})
        assert echoed.status_code == 201
        assert echoed.json() == {"echo": {"n": [1, 2]}}
        assert echoed.headers["x-veil-example"] == f"{runtime}-handler"
        refused = await client.post(f"{endpoint}/echo", content=b"not json")
        assert refused.status_code == 400


async def test_python_examples(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    server_api = await create_api(gateway, alice, "Python server")
    _, endpoint = await deploy_example(
        gateway, deployer, alice, server_api["id"], example_zip("python", "server"), "python server"
    )
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{endpoint}/hi")
    assert answer.json() == {"hello": "veil", "path": "/hi", "method": "GET"}

    handler_api = await create_api(gateway, alice, "Python handler")
    status, endpoint = await deploy_example(
        gateway,
        deployer,
        alice,
        handler_api["id"],
        example_zip("python", "handler"),
        "python handler (cold)",
    )
    container = deployment_container(docker_client, status["deployment_id"])
    assert container.attrs["Config"]["Cmd"] == [
        "python3",
        "/opt/veil/shim/veil_shim.py",
        "/app/handler.py",
    ]
    await check_handler_example(endpoint, "python")

    status, endpoint = await deploy_example(
        gateway,
        deployer,
        alice,
        handler_api["id"],
        example_zip("python", "handler", {"handler.py": b"\n# v2\n"}),
        "python handler code-only redeploy (warm)",
    )
    assert status["version"] == 2
    log = build_log(deployer, status["deployment_id"])
    assert step_cached(log, "ADD deps.tar")
    assert step_cached(log, "COPY shim/")
    await check_handler_example(endpoint, "python")


async def test_node_examples_and_dependency_layer_reuse(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    server_api = await create_api(gateway, alice, "Node server")
    status, endpoint = await deploy_example(
        gateway, deployer, alice, server_api["id"], example_zip("node", "server"), "node server"
    )
    log = build_log(deployer, status["deployment_id"])
    # npm ran in the build sandbox (its data dir is this test's: never a cache hit).
    assert any("Installing dependencies in a build sandbox" in line for line in log), log
    assert any("added 1 package" in line for line in log), log
    async with httpx.AsyncClient() as client:
        answer = (await client.get(f"{endpoint}/hi?name=node")).json()
    assert answer.pop("uptime").endswith("ms")  # from the `ms` dependency
    assert answer == {"hello": "node", "runtime": "node", "method": "GET", "path": "/hi"}

    # A code-only change: the dependency layer comes from the cache.
    status, endpoint = await deploy_example(
        gateway,
        deployer,
        alice,
        server_api["id"],
        example_zip("node", "server", {"index.js": b"\n// v2\n"}),
        "node server code-only redeploy (warm)",
    )
    assert status["version"] == 2
    log = build_log(deployer, status["deployment_id"])
    assert any("Dependencies unchanged" in line for line in log), log
    assert not any("added 1 package" in line for line in log), log
    assert step_cached(log, "ADD deps.tar")
    assert not step_cached(log, "COPY src/ /app/")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{endpoint}/again")).json()["path"] == "/again"

    handler_api = await create_api(gateway, alice, "Node handler")
    status, endpoint = await deploy_example(
        gateway, deployer, alice, handler_api["id"], example_zip("node", "handler"), "node handler"
    )
    container = deployment_container(docker_client, status["deployment_id"])
    assert container.attrs["Config"]["Cmd"] == [
        "node",
        "/opt/veil/shim/veil_shim.cjs",
        "/app/handler.js",
    ]
    await check_handler_example(endpoint, "node")


def image_files(docker_client: docker.DockerClient, image_id: str) -> dict[str, str]:
    """Every path in the image's layers → its kind ('file', 'dir', 'link', ...)."""
    saved = io.BytesIO()
    for chunk in docker_client.images.get(image_id).save(named=False):
        saved.write(chunk)
    saved.seek(0)
    kinds = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "link"}
    found: dict[str, str] = {}
    with tarfile.open(fileobj=saved) as image:
        manifest_file = image.extractfile("manifest.json")
        assert manifest_file is not None
        for layer_name in json.load(manifest_file)[0]["Layers"]:
            layer_file = image.extractfile(layer_name)
            assert layer_file is not None
            with tarfile.open(fileobj=io.BytesIO(layer_file.read())) as layer:
                for member in layer.getmembers():
                    found[member.name.rstrip("/")] = kinds.get(member.type, "other")
    return found


async def test_go_examples_static_binary_without_shell(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    instance_label: str,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    server_api = await create_api(gateway, alice, "Go server")
    _, endpoint = await deploy_example(
        gateway,
        deployer,
        alice,
        server_api["id"],
        example_zip("go", "server"),
        "go server (cold)",
    )
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{endpoint}/hi?name=gopher")
    assert answer.json() == {"hello": "gopher", "runtime": "go", "method": "GET", "path": "/hi"}

    handler_api = await create_api(gateway, alice, "Go handler")
    status, endpoint = await deploy_example(
        gateway, deployer, alice, handler_api["id"], example_zip("go", "handler"), "go handler"
    )
    async with httpx.AsyncClient() as client:
        greeting = await client.get(f"{endpoint}/greet?name=veil")
        echoed = await client.post(f"{endpoint}/echo", content=b"12345")
        refused = await client.delete(f"{endpoint}/x")
    assert greeting.json() == {
        "hello": "veil",
        "runtime": "go",
        "contract": "handler",
        "method": "GET",
        "path": "/greet",
    }
    assert echoed.json()["body_length"] == 5
    assert refused.status_code == 405

    # The final image: small, the static binary and a CA bundle, no shell at all.
    container = deployment_container(docker_client, status["deployment_id"])
    assert container.attrs["Config"]["Cmd"] == ["/app/server"]
    image = docker_client.images.get(container.image.id)
    assert image.attrs["Size"] < GO_IMAGE_MAX_BYTES, image.attrs["Size"]
    assert image.attrs["Config"]["User"] == "10001:10001"
    assert "PORT=8080" in image.attrs["Config"]["Env"]
    files = image_files(docker_client, image.id)
    assert {p for p, kind in files.items() if kind != "dir"} == {
        "app/server",
        "etc/ssl/certs/ca-certificates.crt",
    }, files
    with pytest.raises(docker.errors.APIError, match="no such file"):
        docker_client.containers.run(
            image.id,
            entrypoint=["/bin/sh", "-c", "true"],
            labels={"veil.instance": instance_label},  # removed by the fixture
        )

    # A code-only change recompiles in the sandbox; the image's other steps are reused.
    status, endpoint = await deploy_example(
        gateway,
        deployer,
        alice,
        handler_api["id"],
        example_zip("go", "handler", {"handler.go": b"\n// v2\n"}),
        "go handler code-only redeploy (warm)",
    )
    log = build_log(deployer, status["deployment_id"])
    assert any("Compiling in a build sandbox" in line for line in log), log
    assert step_cached(log, "COPY --from=base")
    assert not step_cached(log, "ADD deps.tar")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{endpoint}/again")).json()["path"] == "/again"

    # A single handler.go without go.mod, and a main package in a subdirectory.
    examples = EXAMPLES / "go" / "examples"
    single_api = await create_api(gateway, alice, "Go single file")
    _, endpoint = await deploy_example(
        gateway,
        deployer,
        alice,
        single_api["id"],
        (examples / "handler" / "handler.go").read_bytes(),
        "go handler, a single file",
        filename="handler.go",
    )
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{endpoint}/single")).json()["contract"] == "handler"
    nested_api = await create_api(gateway, alice, "Go cmd/api")
    nested = {
        "go.mod": (examples / "server" / "go.mod").read_bytes(),
        "cmd/api/main.go": (examples / "server" / "main.go").read_bytes(),
    }
    _, endpoint = await deploy_example(
        gateway, deployer, alice, nested_api["id"], zip_bytes(nested), "go server in cmd/api/"
    )
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{endpoint}/nested")).json()["runtime"] == "go"
