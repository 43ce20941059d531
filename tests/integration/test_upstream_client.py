"""The data plane's upstream HTTP/1.1 client against real servers on loopback.

Every test runs on the standard event loop and on uvloop (the data plane's, under
granian): their transports differ (uvloop's do not subclass asyncio.Transport).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop
from aiohttp import web

from gateway.dataplane.upstream import UnsafeRequest, UpstreamError, UpstreamPool

LOOPS = ["asyncio", "uvloop"]


def run(loop: str, main: Callable[[], Awaitable[None]]) -> None:
    async def wrapped() -> None:
        await main()

    if loop == "uvloop":
        uvloop.run(wrapped())
    else:
        asyncio.run(wrapped())


class App:
    """An aiohttp server that counts the connections it was reached on."""

    def __init__(self) -> None:
        self.transports: set[int] = set()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.transports.add(id(request.transport))
        if request.path == "/big":
            response = web.StreamResponse()  # chunked, streamed in pieces
            await response.prepare(request)
            for _ in range(64):
                await response.write(b"x" * 16384)
            await response.write_eof()
            return response
        if request.path == "/empty":
            return web.Response(status=204)
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "host": request.headers.get("Host"),
                "te": request.headers.get("Transfer-Encoding"),
                "length": request.headers.get("Content-Length"),
                "x": request.headers.get("X-Thing"),
                "body": body.decode(),
            },
            headers={"X-Answer": "yes"},
        )


async def _with_app(test: Callable[[App, UpstreamPool], Awaitable[None]]) -> None:
    app = App()
    await app.start()
    pool = UpstreamPool()
    try:
        await test(app, pool)
    finally:
        await pool.close()
        await app.stop()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


@pytest.mark.parametrize("loop", LOOPS)
def test_keep_alive_reuses_one_connection(loop: str) -> None:
    async def test(app: App, pool: UpstreamPool) -> None:
        for n in range(5):
            async with await pool.request(
                "127.0.0.1", app.port, "GET", f"/a?n={n}", [("X-Thing", "t")]
            ) as response:
                assert response.status == 200
                assert (b"X-Answer", b"yes") in response.raw_headers
                data = await response.read()
            assert f'"path": "/a?n={n}"' in data.decode()
            assert f'"host": "127.0.0.1:{app.port}"' in data.decode()
            assert '"x": "t"' in data.decode()
        assert len(app.transports) == 1

    run(loop, lambda: _with_app(test))


@pytest.mark.parametrize("loop", LOOPS)
def test_request_bodies_with_length_and_chunked(loop: str) -> None:
    async def test(app: App, pool: UpstreamPool) -> None:
        async with await pool.request(
            "127.0.0.1", app.port, "POST", "/p", [], _chunks(b"ab", b"cd"), 4
        ) as response:
            seen = await response.read()
        assert b'"length": "4"' in seen
        assert b'"body": "abcd"' in seen
        async with await pool.request(
            "127.0.0.1", app.port, "PUT", "/p", [], _chunks(b"he", b"llo", b""), None
        ) as response:
            seen = await response.read()
        assert b'"te": "chunked"' in seen
        assert b'"body": "hello"' in seen
        assert len(app.transports) == 1  # both complete: the connection was kept

    run(loop, lambda: _with_app(test))


@pytest.mark.parametrize("loop", LOOPS)
def test_streamed_answer_head_and_no_content(loop: str) -> None:
    async def test(app: App, pool: UpstreamPool) -> None:
        async with await pool.request("127.0.0.1", app.port, "GET", "/big", []) as response:
            assert response.content_length is None
            pieces = [chunk async for chunk in response.iter_chunks()]
        assert sum(map(len, pieces)) == 64 * 16384
        async with await pool.request("127.0.0.1", app.port, "HEAD", "/a", []) as response:
            assert response.status == 200
            assert await response.read() == b""
        async with await pool.request("127.0.0.1", app.port, "GET", "/empty", []) as response:
            assert (response.status, await response.read()) == (204, b"")

    run(loop, lambda: _with_app(test))


async def _raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_pooled_connection_the_app_closed_is_retried_once(loop: str) -> None:
    async def main() -> None:
        connections: list[int] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(1)
            await _read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()  # an app's keep-alive timeout, while the client idles

        server, port = await _raw_server(handler)
        pool = UpstreamPool()
        try:
            for _ in range(2):
                async with await pool.request("127.0.0.1", port, "GET", "/", []) as response:
                    assert await response.read() == b"ok"
                await asyncio.sleep(0.2)
            assert len(connections) == 2
        finally:
            await pool.close()
            server.close()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_an_answer_before_the_body_is_read(loop: str) -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await _read_head(reader)  # and not the body: it answers at once
                writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 14\r\n\r\ntoo big for me")
                await writer.drain()
                await asyncio.sleep(0.1)
            finally:
                writer.close()

        server, port = await _raw_server(handler)
        pool = UpstreamPool()
        try:
            body = _chunks(*([b"y" * 65536] * 64))
            async with await pool.request(
                "127.0.0.1", port, "POST", "/", [], body, 64 * 65536
            ) as response:
                assert response.status == 413
                assert await response.read() == b"too big for me"
            assert pool._idle == {}  # the body was not all sent: never reused
        finally:
            await pool.close()
            server.close()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_body_that_ends_with_the_connection(loop: str) -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_head(reader)
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
            await writer.drain()
            writer.close()

        server, port = await _raw_server(handler)
        pool = UpstreamPool()
        try:
            async with await pool.request("127.0.0.1", port, "GET", "/", []) as response:
                assert await response.read() == b"until the end"
        finally:
            await pool.close()
            server.close()

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_failures_are_upstream_errors(loop: str) -> None:
    async def main() -> None:
        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_head(reader)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            await writer.drain()
            await reader.read()  # until the client hangs up on it
            writer.close()

        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
            await writer.drain()
            writer.close()

        pool = UpstreamPool()
        unused, port = await _raw_server(garbage)
        unused.close()
        await unused.wait_closed()
        with pytest.raises(UpstreamError):  # nothing listens
            await pool.request("127.0.0.1", port, "GET", "/", [])
        for handler in (garbage, cut):
            server, port = await _raw_server(handler)
            try:
                with pytest.raises(UpstreamError):
                    async with await pool.request("127.0.0.1", port, "GET", "/", []) as response:
                        await response.read()
            finally:
                server.close()
        await pool.close()

    run(loop, main)


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/a b", []),
        ("/a\r\nX-Injected: 1", []),
        ("/ok", [("X-Thing", "v\r\nX-Injected: 1")]),
        ("/ok", [("X-Thing", "nul\x00")]),
    ],
)
def test_nothing_can_end_a_line_of_the_request_head(
    target: str, headers: list[tuple[str, str]]
) -> None:
    async def main() -> None:
        pool = UpstreamPool()
        with pytest.raises(UnsafeRequest):
            await pool.request("127.0.0.1", 9, "GET", target, headers)  # before any connect

    run("asyncio", main)


def test_an_idle_connection_past_its_time_is_not_used() -> None:
    async def test(app: App, pool: UpstreamPool) -> None:
        pool._idle_seconds = 0.05
        for _ in range(2):
            async with await pool.request("127.0.0.1", app.port, "GET", "/", []) as response:
                await response.read()
            await asyncio.sleep(0.1)
        assert len(app.transports) == 2

    run("asyncio", lambda: _with_app(test))


def test_a_connect_nobody_answers_fails_fast() -> None:
    """A listener whose accept queue is full drops new SYNs, like an address that is
    gone: the connect hangs, and the pool gives up after its connect timeout."""

    async def main() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):  # never accepted: they fill the queue
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.1)
        pool = UpstreamPool(connect_seconds=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(UpstreamError, match="cannot connect"):
                await pool.request("127.0.0.1", port, "GET", "/", [])
            assert loop.time() - started < 1.5
        finally:
            for sock in [*fillers, listener]:
                sock.close()

    run("asyncio", main)
