"""A lean HTTP/1.1 client for the one job of the data plane: talk to API containers.

Why not aiohttp: for a small GET to a container it cost several times the CPU
of a bare protocol on httptools, measured in the same run; in the data plane,
this client (with cheaper event ids) halved the CPU of a keyed call
(docs/benchmarks.md). It does only what forwarding needs: keep-alive connections pooled
per container, requests written as given (a streamed body with its
Content-Length, or chunked), responses parsed by llhttp (httptools) and
streamed back with flow control both ways.

Connection reuse rules, as in Go's http.Transport: a pooled connection idles
at most `idle_seconds` (below Node's 5 s keep-alive timeout, so the data plane
never picks a connection the app is closing); a reused connection that fails
before any byte of the answer is retried once on a fresh one when the request
has no body (nothing of the caller's is lost by sending it again); a
connection goes back to the pool only after a complete answer that allows
keep-alive and a fully written request.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import cast

import httptools

HIGH_WATER = 256 * 1024  # buffered answer bytes before the socket stops being read
LOW_WATER = 64 * 1024
# What must never reach the request head: it would end the line (request smuggling).
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_UNSAFE_FIELD = re.compile(r"[\r\n\x00]")


class UpstreamError(ConnectionError):
    """The container could not be reached, or broke the connection mid-answer."""


class UnsafeRequest(ValueError):
    """A request that cannot be written into a request head without changing its meaning."""


class _Connection(asyncio.Protocol):
    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._can_write: asyncio.Future[None] | None = None
        self._reset()

    # ---- one exchange ---------------------------------------------------------------
    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.received_any = False
        self.error: BaseException | None = None
        self._wake: asyncio.Future[None] | None = None
        self._paused = False
        self.no_body = False  # HEAD: the answer ends with its head
        self.until_close = False  # neither length nor chunked: the body ends at EOF

    def start_exchange(self, no_body: bool) -> None:
        self._reset()
        self.no_body = no_body

    # ---- asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.complete:  # bytes after the answer, unasked for: never reuse this
            self.close()
            return
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"the container sent an invalid answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.until_close and exc is None and self.head.done():
            self.complete = True
            self._notify()
        if not self.complete:
            self._fail(UpstreamError(f"the container closed the connection ({exc or 'EOF'})"))
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_exception(UpstreamError("the connection was closed"))

    def pause_writing(self) -> None:
        if self._can_write is None or self._can_write.done():
            self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    # ---- httptools callbacks --------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # 100 Continue and friends: not the answer yet
            self.headers = []
            return
        self.keep_alive = self.parser.should_keep_alive()
        framed = any(
            n.lower() in (b"content-length", b"transfer-encoding") for n, _ in self.headers
        )
        self.until_close = not framed and self.status not in (204, 304)
        if not self.head.done():
            self.head.set_result(None)
        if self.no_body:
            self.complete = True
            self.keep_alive = False  # llhttp would wait for the announced body
            self._notify()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._notify()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return
        self.complete = True
        self._notify()

    # ---- helpers --------------------------------------------------------------------
    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved: no "never retrieved" warning if unused
        self._notify()

    async def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise UpstreamError("the connection was closed")
        self.transport.write(data)
        if self._can_write is not None and not self._can_write.done():
            await self._can_write

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            while self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self._paused and self.buffered < LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
            if self.complete:
                return
            if self.error is not None:
                raise self.error
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """One answer: status and raw headers at once, the body as it arrives."""

    def __init__(self, pool: UpstreamPool, connection: _Connection) -> None:
        self._pool = pool
        self._connection = connection
        self.status = connection.status
        self.raw_headers = connection.headers
        self._writer: asyncio.Task[None] | None = None

    @property
    def content_length(self) -> int | None:
        for name, value in self.raw_headers:
            if name.lower() == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def iter_chunks(self) -> AsyncIterator[bytes]:
        return self._connection.body()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self._connection.body()])

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self._connection
        writer_ok = self._writer is None or (
            self._writer.done() and not self._writer.cancelled() and not self._writer.exception()
        )
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
        reusable = (
            exc_type is None
            and writer_ok
            and connection.complete
            and connection.keep_alive
            and not connection.closed
        )
        if reusable:
            self._pool.release(connection)
        else:
            connection.close()


class UpstreamPool:
    def __init__(
        self, idle_seconds: float = 4.0, max_idle_per_host: int = 256, connect_seconds: float = 2.0
    ) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._idle_seconds = idle_seconds
        # A container that is gone leaves an address nobody answers ARP for: the
        # kernel would take ~3 s to say so. Callers get a 502 sooner.
        self._connect_seconds = connect_seconds
        self._max_idle = max_idle_per_host

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None = None,
        content_length: int | None = None,
    ) -> Response:
        """Send a request; returns once the answer's head is in (use `async with`).

        `body`: the request body as it arrives, `content_length` bytes long, or
        sent chunked when its length is unknown (None with a body).
        """
        head = _request_head(method, target, host, port, headers, body, content_length)
        no_body = method == "HEAD"
        connection, reused = await self._checkout(host, port)
        try:
            return await self._exchange(connection, head, body, content_length, no_body)
        except UpstreamError:
            connection.close()
            if not (reused and body is None and not connection.received_any):
                raise
        # A pooled connection the app had closed meanwhile: once more, on a new one.
        connection = await self._connect(host, port)
        try:
            return await self._exchange(connection, head, None, None, no_body)
        except BaseException:
            connection.close()
            raise

    async def _exchange(
        self,
        connection: _Connection,
        head: bytes,
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
        no_body: bool,
    ) -> Response:
        connection.start_exchange(no_body)
        writer: asyncio.Task[None] | None = None
        try:
            await connection.write(head)
            if body is not None:
                # Written beside the wait for the answer: an app may answer (413,
                # 401 …) before it has read the whole body.
                writer = asyncio.get_running_loop().create_task(
                    _write_body(connection, body, chunked=content_length is None)
                )
            if writer is None:
                await connection.head
            else:
                await asyncio.wait({writer, connection.head}, return_when=asyncio.FIRST_COMPLETED)
                if writer.done() and writer.exception() is not None and not connection.head.done():
                    raise writer.exception()  # type: ignore[misc]
                await connection.head
        except BaseException:
            if writer is not None and not writer.done():
                writer.cancel()
            connection.close()
            raise
        response = Response(self, connection)
        response._writer = writer
        return response

    async def _checkout(self, host: str, port: int) -> tuple[_Connection, bool]:
        idle = self._idle.get((host, port))
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: warmest, least likely closed
            if not connection.closed and now - connection.idle_since < self._idle_seconds:
                return connection, True
            connection.close()
        return await self._connect(host, port), False

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_seconds):
                _, protocol = await loop.create_connection(
                    lambda: _Connection((host, port)), host, port
                )
        except OSError as exc:  # TimeoutError included
            raise UpstreamError(f"cannot connect to the container: {exc}") from exc
        return protocol

    def release(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


async def _write_body(connection: _Connection, body: AsyncIterator[bytes], chunked: bool) -> None:
    async for chunk in body:
        if not chunk:
            continue
        if chunked:
            await connection.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            await connection.write(chunk)
    if chunked:
        await connection.write(b"0\r\n\r\n")


def _request_head(
    method: str,
    target: str,
    host: str,
    port: int,
    headers: list[tuple[str, str]],
    body: AsyncIterator[bytes] | None,
    content_length: int | None,
) -> bytes:
    if _UNSAFE_TARGET.search(target) or _UNSAFE_TARGET.search(method):
        raise UnsafeRequest("the request target holds a control character or a space")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if any(_UNSAFE_FIELD.search(line) for line in lines[2:]):
        raise UnsafeRequest("a header holds CR, LF or NUL")
    if body is not None:
        if content_length is None:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
