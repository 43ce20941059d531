"""Who is calling, by network address: the socket's peer, or a trusted proxy's header.

Behind a load balancer every call comes from the balancer, so throttles keyed on
the peer would lump all callers together; the balancer's header then names the
caller. Only a header the operator configured (`VEIL_CLIENT_ADDRESS_HEADER`) is
believed: anyone can send an `X-Forwarded-For`. For that header the rightmost
entry counts, the one the trusted proxy appended itself.
"""

from __future__ import annotations

from collections.abc import Iterable


def client_address(
    headers: Iterable[tuple[bytes, bytes]], peer: str | None, trusted_header: bytes
) -> str:
    if trusted_header:
        for name, value in headers:
            if name == trusted_header:
                last = value.decode("latin-1").rsplit(",", 1)[-1].strip()
                if last:
                    return last[:64]
    return peer or "unknown"
