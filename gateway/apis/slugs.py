"""API slugs: the first path segment on the data plane, so they are strict."""

from __future__ import annotations

import re
import secrets

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")
# Names the data plane or the UI may want for themselves one day.
RESERVED = frozenset(
    {"api", "admin", "docs", "healthz", "readyz", "metrics", "static", "login", "veil"}
)


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
    return slug or "api"


def with_suffix(slug: str) -> str:
    return f"{slug}-{secrets.token_hex(3)}"


def is_valid_slug(slug: str) -> bool:
    return bool(SLUG_PATTERN.match(slug)) and slug not in RESERVED
