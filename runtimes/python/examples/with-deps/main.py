"""Veil sample app with a dependency from PyPI (six, pure Python).

Serves like examples/server on 0.0.0.0:$PORT and also reports the version of
the installed dependency, proving the build's `pip install` worked.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import six

MAX_BODY = 10 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    server_version = "veil-sample-deps/1"
    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _payload(self, method: str) -> dict[str, object]:
        return {
            "hello": "veil",
            "path": self.path,
            "method": method,
            "six": six.__version__,
            "py3": six.PY3,
        }

    def do_GET(self) -> None:
        self._reply(200, self._payload("GET"))

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._reply(400, {"error": "bad Content-Length"})
            return
        payload = self._payload("POST")
        payload["body_length"] = len(self.rfile.read(length))
        self._reply(200, payload)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    print(f"listening on 0.0.0.0:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
