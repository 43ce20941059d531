"""The build sandboxes' only way out: an HTTPS (CONNECT) proxy to the package indexes.

Build sandboxes sit on the build network, whose traffic the egress policy
drops entirely (executor/egress.py) except to this proxy, on the network's
gateway address. pip, npm and go honour HTTPS_PROXY, which the sandbox sets
(executor/dependencies.py). The proxy tunnels `CONNECT host:443` for the
configured index hosts only (`VEIL_BUILD_ALLOWED_HOSTS`, plus the host of
`VEIL_GO_PROXY`) and answers 403 to anything else, so a hostile install script
reaches the indexes and nothing more: no metadata service, no LAN, no other host.

    python -m executor.build_proxy     (started by `make run` beside the executor)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from urllib.parse import urlsplit

from executor.deploy import prepare_networks
from executor.docker_adapter import DockerAdapter
from shared.logging import configure_logging
from shared.settings import ExecutorSettings

log = logging.getLogger("veil.executor.build_proxy")
_MAX_REQUEST_HEAD = 8192
_CONNECT_TIMEOUT = 15.0


def allowed_hosts(settings: ExecutorSettings) -> frozenset[str]:
    hosts = {h.lower() for h in settings.build_allowed_hosts}
    for proxy in settings.go_proxy.split(","):
        host = urlsplit(proxy.strip()).hostname
        if host:
            hosts.add(host.lower())
    return frozenset(hosts)


class BuildProxy:
    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _CONNECT_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        target = _connect_target(head)
        if target is None or target[0] not in self.allowed or target[1] != 443:
            log.warning("refused build egress to %r", head.split(b"\r\n", 1)[0][:200])
            await _answer(writer, b"403 Forbidden")
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*target), _CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            await _answer(writer, b"502 Bad Gateway")
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                end.close()


def _connect_target(head: bytes) -> tuple[str, int] | None:
    """(host, port) of a well-formed `CONNECT host:port HTTP/1.x` request line."""
    try:
        method, authority, version = head.split(b"\r\n", 1)[0].decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        return None
    host, _, port = authority.rpartition(":")
    if method != "CONNECT" or not version.startswith("HTTP/1.") or not port.isdigit():
        return None
    return host.lower(), int(port)


async def _answer(writer: asyncio.StreamWriter, status: bytes) -> None:
    writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction; at its end, pass the half-close on (the other may go on)."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def serve(settings: ExecutorSettings, host: str) -> None:
    proxy = BuildProxy(allowed_hosts(settings))
    server = await asyncio.start_server(
        proxy.handle, host, settings.build_proxy_port, limit=_MAX_REQUEST_HEAD
    )
    log.info("build proxy on %s:%d for %s", host, settings.build_proxy_port, sorted(proxy.allowed))
    async with server:
        await server.serve_forever()


def main() -> int:
    settings = ExecutorSettings()
    configure_logging(settings.log_level, "build-proxy")
    if settings.build_network == "none":
        log.info("builds have no network (VEIL_BUILD_NETWORK=none): no proxy needed")
        return 0
    docker = DockerAdapter.from_env()
    try:
        prepare_networks(docker, settings)
        host = docker.network_gateway(settings.build_network)
    finally:
        docker.close()
    asyncio.run(serve(settings, host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
