"""Cookie names the platform keeps for itself.

The dashboard's own cookies (the sign-in cookie that is coming) are `__Host-`
cookies: a browser accepts them only from their exact origin, over a secure
context, with Path=/ and no Domain, so no tenant page can set or overwrite one,
whatever host name it is served from. Tenants may not use these names at all:
the data plane drops them from what a tenant sets and from what it is sent.
"""

from __future__ import annotations

SESSION_COOKIE = "__Host-veil_session"
# Lower-case prefixes of every platform cookie name (a tenant's are refused).
PLATFORM_COOKIE_PREFIXES = (b"veil_", b"__host-veil", b"__secure-veil")


def is_platform_cookie(name: bytes) -> bool:
    return name.strip().lower().startswith(PLATFORM_COOKIE_PREFIXES)
