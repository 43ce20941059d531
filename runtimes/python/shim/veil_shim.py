"""Veil handler shim for Python: serves a user's `handle(request)` on 0.0.0.0:$PORT.

Standard library only. Veil runs `python3 /opt/veil/shim/veil_shim.py /app/handler.py`.

handler.py defines, at top level::

    def handle(request):            # or: async def handle(request)
        return {"hello": request.query.get("name", "world")}

`request` (a `Request`, one per call) has:

    method   "GET", "POST", ...
    url      the request target as sent: "/users/42?x=1"
    path     the path without the query string: "/users/42"
    query    dict[str, str], decoded; the first value of a repeated name
    headers  dict[str, str], names lower-cased; repeated headers joined with ", "
    body     bytes (b"" when there is none; at most 10 MiB, else 413)
    text     the body decoded as UTF-8 (undecodable bytes replaced)
    json()   the body parsed as JSON (raises ValueError when it is not JSON)

The return value becomes the response:

    str                          200, text/plain; charset=utf-8
    bytes / bytearray            200, application/octet-stream
    None                         204, no body
    (status, body)               that status, the body converted by these rules
    (status, headers, body)      plus those headers (a Content-Type there wins)
    anything else                200, application/json (json.dumps: dict, list, numbers...)

An exception answers 500 {"error": "internal error"}; its traceback goes to the
container log. Requests are served on threads: `handle` may run concurrently.
An async `handle` runs in a fresh event loop per request.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_BODY = 10 * 1024 * 1024
NO_BODY_STATUSES = frozenset({204, 304})

Handle = Callable[["Request"], Any]


class BodyTooLarge(Exception):
    pass


class Request:
    """What `handle` receives. Plain attributes, built once per HTTP request."""

    __slots__ = ("body", "headers", "method", "path", "query", "url")

    def __init__(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> None:
        parts = urlsplit(url)
        self.method = method
        self.url = url
        self.path = parts.path or "/"
        self.query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            self.query.setdefault(name, value)
        self.headers = dict(headers)
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url} ({len(self.body)} bytes)>"


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def to_response(result: Any) -> Response:
    """Turn what `handle` returned into a status, headers and body (see the module doc)."""
    status = 200
    extra: Mapping[str, Any] = {}
    body = result
    if isinstance(result, tuple):
        if len(result) == 2:
            status, body = result
        elif len(result) == 3:
            status, extra, body = result
        else:
            raise TypeError("return (status, body) or (status, headers, body)")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise TypeError(f"invalid status {status!r}")
        if not isinstance(extra, Mapping):
            raise TypeError("headers must be a dict")
    elif result is None:
        status = 204
    payload, content_type = _encode(body)
    headers: list[tuple[str, str]] = []
    for name, value in extra.items():
        name, value = str(name), str(value)
        if not name or any(c in name for c in "\r\n:") or any(c in value for c in "\r\n"):
            raise ValueError(f"invalid header {name!r}")
        headers.append((name, value))
    if content_type and not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", content_type))
    return Response(status, headers, payload)


def _encode(body: Any) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), "application/octet-stream"
    return json.dumps(body).encode("utf-8"), "application/json"


def call(handle: Handle, request: Request) -> Response:
    result = handle(request)
    if inspect.isawaitable(result):
        result = asyncio.run(_wait(result))
    return to_response(result)


async def _wait(awaitable: Any) -> Any:
    return await awaitable


def load_handle(path: Path) -> Handle:
    """Import the user's file as module `handler` and return its `handle`."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    handle = getattr(module, "handle", None)
    if not callable(handle):
        raise RuntimeError(f"{path.name} must define a top-level `def handle(request)`")
    return handle  # type: ignore[no-any-return]


def make_server(handle: Handle, host: str, port: int) -> ThreadingHTTPServer:
    class Shim(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "veil-python-shim/1"

        def _serve(self) -> None:
            try:
                body = self._read_body()
            except BodyTooLarge:
                self.close_connection = True
                self._send(_error(413, "body too large"))
                return
            except ValueError:
                self.close_connection = True
                self._send(_error(400, "bad request body"))
                return
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            request = Request(self.command, self.path, headers, body)
            try:
                response = call(handle, request)
            except Exception:
                print(f"veil shim: {self.command} {self.path} failed:", file=sys.stderr)
                traceback.print_exc()
                response = _error(500, "internal error")
            self._send(response)

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked()
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError("negative Content-Length")
            if length > MAX_BODY:
                raise BodyTooLarge
            return self.rfile.read(length)

        def _read_chunked(self) -> bytes:
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                chunk_size = int(line.split(b";", 1)[0].strip(), 16)
                if chunk_size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                size += chunk_size
                if size > MAX_BODY:
                    raise BodyTooLarge
                chunks.append(self.rfile.read(chunk_size))
                self.rfile.readline(1024)  # the CRLF after each chunk

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            bodyless = response.status in NO_BODY_STATUSES or response.status < 200
            if not bodyless:
                self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if not bodyless and self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    server = ThreadingHTTPServer((host, port), Shim)
    server.daemon_threads = True
    return server


def _error(status: int, message: str) -> Response:
    body = json.dumps({"error": message}).encode()
    return Response(status, [("Content-Type", "application/json")], body)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 veil_shim.py HANDLER_FILE", file=sys.stderr)
        return 2
    path = Path(argv[1]).resolve()
    # The user's project comes first on sys.path, as when running a script from it.
    sys.path.insert(0, str(path.parent))
    handle = load_handle(path)
    port = int(os.environ.get("PORT", "8080"))
    server = make_server(handle, "0.0.0.0", port)
    print(f"veil shim: serving {path.name} on 0.0.0.0:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
