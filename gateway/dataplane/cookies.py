"""Tenant cookies, confined to their own API.

On a host name of its own (`<slug>.<api-domain>`) an API is its own origin, and
its cookies stay host-only: a `Domain` attribute is dropped, so no tenant sets a
cookie for its siblings or the dashboard through the gateway. On the shared path
form (`<gateway>/<slug>/`) every cookie is also pinned under the API's prefix
(`Path=/<slug>/...`), so the browser sends it back to that API only; `__Host-`
cookies cannot live there (they need Path=/) and are dropped. Either way the
platform's own names are refused, set or sent.
"""

from __future__ import annotations

from shared.http.cookies import is_platform_cookie


def without_platform_cookies(header: bytes) -> bytes:
    """A request's Cookie header minus the platform's cookies (b"" if none is left)."""
    kept = [c for c in header.split(b";") if not is_platform_cookie(c.partition(b"=")[0])]
    return b";".join(kept).strip()


def confine(set_cookie: bytes, path_prefix: bytes | None) -> bytes | None:
    """A tenant's Set-Cookie value as the browser may see it, or None to drop it.

    `path_prefix` is b"/<slug>/" on the path form, None on the API's own host.
    """
    pair, *attributes = set_cookie.split(b";")
    name = pair.partition(b"=")[0].strip()
    if not name or is_platform_cookie(name):
        return None
    kept: list[bytes] = []
    path = b"/"
    for attribute in attributes:
        key, _, value = attribute.partition(b"=")
        key = key.strip().lower()
        if key == b"domain":
            continue  # host-only, always
        if key == b"path" and path_prefix is not None:
            path = value.strip() or b"/"
            continue
        kept.append(attribute)
    if path_prefix is not None:
        if name.lower().startswith(b"__host-"):
            return None
        kept.append(b" Path=" + path_prefix + path.lstrip(b"/"))
    return b";".join([pair, *kept])
