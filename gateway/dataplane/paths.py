"""Request paths, normalised before routing.

The slug (and so the target) comes only from the normalised path: dot segments
are removed as RFC 3986 §5.2.4 says, including percent-encoded ones
(`%2e%2e`, `.%2E`), so `/a/../b/x` is routed to `b`, never to `a` with a path
that climbs out of it. A segment that hides a dot segment behind an encoded
separator (`..%2f`, `%5c..`, a raw backslash) is refused: an upstream that
decodes it would climb where routing did not look. Encoded slashes in plain
names (`/files/a%2Fb`) pass untouched, and so does NUL-free everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote_to_bytes

_SEPARATORS = re.compile(rb"[/\\]")


@dataclass(frozen=True)
class RoutedPath:
    slug: str  # decoded first segment ("" when the path is just "/")
    rest: bytes  # the rest, still percent-encoded as sent, without a leading "/"


def normalise(raw_path: bytes) -> bytes | None:
    """The path with dot segments removed; None if it cannot be routed safely."""
    if b"\0" in raw_path or b"%00" in raw_path:
        return None
    out: list[bytes] = []
    segments = raw_path.split(b"/")[1:] if raw_path.startswith(b"/") else raw_path.split(b"/")
    for index, segment in enumerate(segments):
        decoded = unquote_to_bytes(segment) if b"%" in segment else segment
        parts = _SEPARATORS.split(decoded)
        if len(parts) > 1 and any(part in (b".", b"..") for part in parts):
            return None  # a dot segment behind an encoded or backslash separator
        last = index == len(segments) - 1
        if decoded == b".":
            if last:
                out.append(b"")  # "/a/." is "/a/"
            continue
        if decoded == b"..":
            if out:
                out.pop()
            if last:
                out.append(b"")
            continue
        out.append(segment)
    return b"/" + b"/".join(out)


def split(normalised: bytes) -> RoutedPath | None:
    """Slug and rest of a normalised path; None when the slug is not plain ASCII."""
    first, _, rest = normalised.lstrip(b"/").partition(b"/")
    try:
        slug = unquote_to_bytes(first).decode("ascii") if b"%" in first else first.decode("ascii")
    except UnicodeDecodeError:
        return None
    return RoutedPath(slug=slug, rest=rest)


# Paths up to this length are memoised: most traffic repeats a few paths, and
# normalising one costs more than the rest of routing. Longer ones are worked out
# each time, so hostile long paths cannot fill memory.
_MEMO_PATH_BYTES = 256


def route_path(raw_path: bytes) -> RoutedPath | None:
    """`split(normalise(raw_path))`; None when the path cannot be routed."""
    if len(raw_path) > _MEMO_PATH_BYTES:
        return _route_path(raw_path)
    return _memo_route_path(raw_path)


def _route_path(raw_path: bytes) -> RoutedPath | None:
    normalised = normalise(raw_path)
    return split(normalised) if normalised is not None else None


_memo_route_path = lru_cache(maxsize=8192)(_route_path)


def host_path(raw_path: bytes) -> bytes | None:
    """The whole normalised path, as the rest, for an API on its own host name."""
    if len(raw_path) > _MEMO_PATH_BYTES:
        normalised = normalise(raw_path)
    else:
        normalised = _memo_normalise(raw_path)
    return normalised.lstrip(b"/") if normalised is not None else None


_memo_normalise = lru_cache(maxsize=8192)(normalise)


@lru_cache(maxsize=8192)
def slug_from_host(host: bytes, api_domain: bytes) -> str | None:
    """The slug of `<slug>.<api_domain>[:port]` (one label, ASCII); None otherwise.

    Memoised: a caller can only make it hold the names they send, 8,192 at most.
    """
    name = host.lower()
    if name.startswith(b"["):
        return None  # an IPv6 literal: never an API's host name
    name = name.partition(b":")[0].rstrip(b".")
    suffix = b"." + api_domain
    if not api_domain or not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    if not label or b"." in label:
        return None
    try:
        return label.decode("ascii")
    except UnicodeDecodeError:
        return None
