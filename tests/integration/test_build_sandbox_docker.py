"""A hostile package at build time: what its install hook can see and do.

Each test deploys a package whose build-time hook (an npm lifecycle script, a
PEP 517 build backend run by pip for an sdist) is the attacker. The hook reports
its uid, capabilities and no-new-privileges flag, how far it can write, and
which addresses it can reach (tests/fixtures/hostile_build). Every target is a
listener of this test on this machine: the build network's gateway and another
of the host's addresses; the one outside name it asks for is the package index,
directly and through the build proxy.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from redis.asyncio import Redis

from executor.deploy import Deployer, prepare_networks
from executor.docker_adapter import deployment_container
from tests.integration.conftest import create_api, deploy_and_wait, signup, zip_bytes

pytestmark = pytest.mark.docker

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hostile_build"
NO_CAPABILITIES = "0000000000000000"
DISK_MB = 64
SERVER = b"require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT)\n"


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """SQLite only: what a build may do does not depend on the database."""
    return sqlite_database_url


def host_address() -> str:
    """One of this machine's own addresses that is not loopback or a Docker bridge."""
    listing = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in listing.splitlines():
        fields = line.split()
        if not fields[1].startswith(("docker", "br-", "veth")):
            return fields[3].split("/")[0]
    pytest.skip("this machine has no address besides loopback and Docker's bridges")


@contextlib.contextmanager
def listener(host: str) -> Iterator[int]:
    """A TCP listener on `host` that accepts and closes; yields its port."""
    server = socket.create_server((host, 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                server.accept()[0].close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        server.close()


@contextlib.contextmanager
def file_server(host: str, directory: Path) -> Iterator[int]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(directory))
    server = ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def sandboxed(deployer: Deployer, **settings: Any) -> Deployer:
    updated = deployer.settings.model_copy(update={"build_disk_limit_mb": DISK_MB, **settings})
    prepare_networks(deployer.docker, updated)  # the allow-list, if any, applied
    return Deployer(updated, deployer.sessions, deployer.docker, deployer.redis)


def npm_package(plan: dict[str, Any]) -> bytes:
    script = f"const PLAN = {json.dumps(plan)};\n" + (FIXTURES / "hook.js").read_text()
    encoded = base64.b64encode(script.encode()).decode()
    install = f"node -e \"eval(Buffer.from('{encoded}', 'base64').toString())\""
    package = {"name": "hostile", "version": "1.0.0", "scripts": {"install": install}}
    return zip_bytes({"package.json": json.dumps(package).encode(), "index.js": SERVER})


def sdist(plan: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    files = {name: (FIXTURES / name).read_bytes() for name in ("backend.py", "report.py")}
    files["pyproject.toml"] = (FIXTURES / "pyproject.toml").read_bytes()
    files["plan.json"] = json.dumps(plan).encode()
    files["PKG-INFO"] = b"Metadata-Version: 2.1\nName: hostile\nVersion: 1.0\n"
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(f"hostile-1.0/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def hostile_report(deployer: Deployer, status: dict[str, Any]) -> dict[str, Any]:
    path = deployer.settings.data_dir / "logs" / "builds" / f"{status['deployment_id']}.log"
    for line in path.read_text("utf-8").splitlines():
        if "HOSTILE-REPORT " in line:
            report: dict[str, Any] = json.loads(line.split("HOSTILE-REPORT ", 1)[1])
            return report
    raise AssertionError(f"the hook did not report: {status}")


def assert_least_privilege(report: dict[str, Any]) -> None:
    status = report["status"]
    assert status["Uid"] == "10001", status
    for capabilities in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert status[capabilities] == NO_CAPABILITIES, status
    assert status["NoNewPrivs"] == "1", status
    for path, filled in report["fills"].items():
        assert filled["mib"] <= DISK_MB, (path, filled)
        assert filled["error"] in ("ENOSPC", "No space left on device"), (path, filled)


async def test_npm_lifecycle_script_runs_without_privilege_and_reaches_only_the_index(
    gateway: httpx.AsyncClient, deployer: Deployer, redis: Redis
) -> None:
    build_gateway = deployer.docker.network_gateway(deployer.settings.build_network)
    host = host_address()
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    with listener(build_gateway) as on_gateway, listener(host) as on_host:
        plan = {
            "probes": [
                f"{build_gateway}:{on_gateway}",
                f"[::ffff:{build_gateway}]:{on_gateway}",
                f"{host}:{on_host}",
                "registry.npmjs.org:443",  # only through the proxy
            ],
            "proxy": ["registry.npmjs.org:443", f"{build_gateway}:{on_gateway}"],
            "fills": ["/app/junk", "/tmp/junk"],
            "exit": 1,  # npm shows a lifecycle script's output when it fails
        }
        status = await deploy_and_wait(
            gateway, sandboxed(deployer), alice, api["id"], npm_package(plan)
        )
    assert status["status"] == "failed", status
    report = hostile_report(deployer, status)
    assert_least_privilege(report)
    for target, outcome in report["probes"].items():
        assert outcome.startswith("refused"), (target, outcome)
    assert report["proxy"] == {
        "registry.npmjs.org:443": "HTTP/1.1 200 Connection established",
        f"{build_gateway}:{on_gateway}": "HTTP/1.1 403 Forbidden",
    }


async def test_pip_build_backend_runs_without_privilege_and_the_allow_list_holds(
    gateway: httpx.AsyncClient, deployer: Deployer, redis: Redis, tmp_path: Path
) -> None:
    build_gateway = deployer.docker.network_gateway(deployer.settings.build_network)
    host = host_address()
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    served = tmp_path / "index"
    served.mkdir()
    with (
        listener(build_gateway) as other_port,
        listener(host) as on_host,
        file_server(build_gateway, served) as allowed_port,
    ):
        allowed = f"{build_gateway}:{allowed_port}"
        plan = {
            "probes": [allowed, f"{build_gateway}:{other_port}", f"{host}:{on_host}"],
            "proxy": ["pypi.org:443"],
            "fills": ["/opt/veil/venv/junk", "/tmp/junk"],
        }
        (served / "hostile-1.0.tar.gz").write_bytes(sdist(plan))
        requirements = f"hostile @ http://{allowed}/hostile-1.0.tar.gz\n".encode()
        files = {"requirements.txt": requirements, "main.py": b"print('never runs')\n"}
        status = await deploy_and_wait(
            gateway, sandboxed(deployer, egress_allow=[allowed]), alice, api["id"], zip_bytes(files)
        )
    prepare_networks(deployer.docker, deployer.settings)  # the allow-list gone again
    assert status["status"] == "failed", status
    report = hostile_report(deployer, status)
    assert_least_privilege(report)
    assert report["probes"].pop(allowed) == "connected"  # the admin's allow-list entry
    for target, outcome in report["probes"].items():
        assert outcome.startswith("refused"), (target, outcome)
    assert report["proxy"] == {"pypi.org:443": "HTTP/1.1 200 Connection established"}


async def test_filling_the_disk_fails_the_build_with_the_reason(
    gateway: httpx.AsyncClient, deployer: Deployer, redis: Redis
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    plan = {"probes": [], "proxy": [], "fills": ["/app/junk"], "keep": True, "exit": 1}
    status = await deploy_and_wait(
        gateway, sandboxed(deployer), alice, api["id"], npm_package(plan)
    )
    assert status["status"] == "failed", status
    assert f"filled its disk limit ({DISK_MB} MB) in /app" in status["error"], status


async def test_dependencies_reach_the_image_root_owned_without_setuid_programs(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    instance_label: str,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    example = Path(__file__).parents[2] / "runtimes" / "node" / "examples" / "server"
    files = {p.name: p.read_bytes() for p in example.iterdir() if p.name != "README.md"}
    status = await deploy_and_wait(gateway, deployer, alice, api["id"], zip_bytes(files))
    assert status["status"] == "running", status
    image = deployment_container(docker_client, status["deployment_id"]).image.id
    check = (
        "find / -xdev -type f -perm /6000; "
        "stat -c '%u:%g %a %n' /app/node_modules /app/node_modules/ms/package.json"
    )
    output = docker_client.containers.run(
        image,
        ["sh", "-c", check],
        remove=True,
        labels={"veil.instance": instance_label},  # removed by the fixture if left
    ).decode()
    assert output.splitlines() == [
        "0:0 755 /app/node_modules",
        "0:0 644 /app/node_modules/ms/package.json",
    ], output
