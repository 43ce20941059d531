"""The data plane's floor: its server and its upstream client, with nothing between.

No routing, keys, limits or events: every call is forwarded, as the data plane
forwards (`gateway.dataplane.proxy.forward`, the pooled httptools client), to the
one upstream in VEIL_BARE_UPSTREAM (host:port), served by granian with the data
plane's own command line (`launcher.__main__.dataplane_command`). bench/gateway.py
runs it beside the data plane: what it costs is what the data plane costs before
doing any of its own work, so the gap between the two is the platform's share.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.types import Receive, Scope, Send

from gateway.dataplane.proxy import Upstream, forward, upstream_target
from gateway.dataplane.upstream import UpstreamPool
from shared.http.request_id import new_request_id

MAX_BODY_BYTES = 10 * 1024 * 1024


class BareProxy:
    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.host, self.port = host, int(port)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        request_id = new_request_id()
        target = Upstream(
            host=self.host,
            port=self.port,
            target=upstream_target(scope["path"].encode().lstrip(b"/"), scope),
            headers=[("X-Request-Id", request_id)],
            timeout_seconds=30.0,
            max_body_bytes=MAX_BODY_BYTES,
            max_response_bytes=1 << 40,
            extra_response_headers=[],
            cookie_path=None,
        )
        await forward(self.pool, target, scope, receive, send, request_id)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = UpstreamPool()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> Any:
    return BareProxy(os.environ["VEIL_BARE_UPSTREAM"])
