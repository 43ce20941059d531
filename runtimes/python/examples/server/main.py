"""Veil sample app: a stdlib-only HTTP server on 0.0.0.0:$PORT.

Any GET or POST answers JSON {"hello": "veil", "path": ..., "method": ...};
a POST also reports the length of the body it received.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 10 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    server_version = "veil-sample/1"
    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(200, {"hello": "veil", "path": self.path, "method": "GET"})

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._reply(400, {"error": "bad Content-Length"})
            return
        data = self.rfile.read(length)
        self._reply(
            200,
            {"hello": "veil", "path": self.path, "method": "POST", "body_length": len(data)},
        )

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
