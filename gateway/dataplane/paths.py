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
