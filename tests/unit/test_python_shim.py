"""The Python handler shim in-process: request shape, response conversion, HTTP edge cases."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtimes.python.shim import veil_shim
from runtimes.python.shim.veil_shim import Request, to_response


@pytest.mark.parametrize(
    ("result", "status", "content_type", "body"),
    [
        ("héllo", 200, "text/plain; charset=utf-8", "héllo".encode()),
        (b"\x00\x01", 200, "application/octet-stream", b"\x00\x01"),
        ({"a": [1, 2]}, 200, "application/json", b'{"a": [1, 2]}'),
        ([1, "x"], 200, "application/json", b'[1, "x"]'),
        (42, 200, "application/json", b"42"),
        (None, 204, None, b""),
        ((201, {"id": 7}), 201, "application/json", b'{"id": 7}'),
        ((404, "nope"), 404, "text/plain; charset=utf-8", b"nope"),
        ((202, {"Content-Type": "text/csv"}, "a,b"), 202, "text/csv", b"a,b"),
        ((200, {}, None), 200, None, b""),
    ],
)
def test_return_values_become_responses(
    result: Any, status: int, content_type: str | None, body: bytes
) -> None:
    response = to_response(result)
    assert response.status == status
    assert dict(response.headers).get("Content-Type") == content_type
    assert response.body == body


@pytest.mark.parametrize(
    "result",
    [
        (200, "a", "b", "c"),
        (True, "x"),
        (99, "x"),
        ("200", "x"),
        (200, ["not", "a", "dict"], "x"),
        (200, {"X-Bad": "a\r\nSet-Cookie: x=1"}, "x"),
        (200, {"Bad:Name": "x"}, "x"),
        {1, 2},  # not JSON serialisable
    ],
)
def test_invalid_return_values_are_errors(result: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        to_response(result)


def test_request_shape() -> None:
    request = Request(
        "POST", "/a/b?x=1&x=2&empty=&sp=a%20b", {"content-type": "application/json"}, b'{"k": 1}'
    )
    assert request.path == "/a/b"
    assert request.url == "/a/b?x=1&x=2&empty=&sp=a%20b"
    assert request.query == {"x": "1", "empty": "", "sp": "a b"}
    assert request.json() == {"k": 1}
    assert request.text == '{"k": 1}'
    assert Request("GET", "/", {}).body == b""
    with pytest.raises(json.JSONDecodeError):
        Request("GET", "/", {}, b"not json").json()


def _handle(request: Request) -> Any:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    if request.path == "/async":
        return _async_answer(request)
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "agent": request.headers.get("user-agent"),
        "body": request.text,
    }


async def _async_answer(request: Request) -> tuple[int, dict[str, str], str]:
    return 202, {"X-Async": "yes"}, "later"


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    httpd = veil_shim.make_server(_handle, "127.0.0.1", 0)
    # shutdown() waits for serve_forever's next poll: every 0.5 s unless told.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield "127.0.0.1", httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _call(
    address: tuple[str, int],
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        if chunked:
            connection.putrequest(method, url)
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for part in (b"hello ", b"chunked ", b"world"):
                connection.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            connection.send(b"0\r\n\r\n")
        else:
            connection.request(method, url, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_served_over_http(server: tuple[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    status, headers, body = _call(server, "GET", "/hi?name=x", headers={"User-Agent": "t/1"})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "method": "GET",
        "path": "/hi",
        "query": {"name": "x"},
        "agent": "t/1",
        "body": "",
    }
    status, _, body = _call(server, "PUT", "/p", body=b"payload")
    assert (status, json.loads(body)["body"]) == (200, "payload")
    status, _, body = _call(server, "POST", "/c", chunked=True)
    assert (status, json.loads(body)["body"]) == (200, "hello chunked world")
    status, headers, body = _call(server, "GET", "/async")
    assert (status, headers["X-Async"], body) == (202, "yes", b"later")
    status, headers, body = _call(server, "HEAD", "/hi")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) > 0

    status, _, body = _call(server, "GET", "/boom")
    assert (status, json.loads(body)) == (500, {"error": "internal error"})
    assert "RuntimeError: handler bug" in capsys.readouterr().err

    too_big = str(veil_shim.MAX_BODY + 1)
    status, _, body = _call(server, "POST", "/big", headers={"Content-Length": too_big})
    assert (status, json.loads(body)) == (413, {"error": "body too large"})


def test_load_handle_needs_a_handle_function(tmp_path: Path) -> None:
    good = tmp_path / "handler.py"
    good.write_text("def handle(request):\n    return 'ok'\n")
    assert veil_shim.load_handle(good)(Request("GET", "/", {})) == "ok"
    bad = tmp_path / "nohandle.py"
    bad.write_text("handle = 3\n")
    with pytest.raises(RuntimeError, match="def handle"):
        veil_shim.load_handle(bad)
