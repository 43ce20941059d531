"""Platform secrets for a local install: generated once, kept in data/secrets.env (0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# VEIL_REDIS_PASSWORD: for the Redis `make run` starts (launcher/redis_conf.py).
SECRET_NAMES = ("VEIL_JWT_SECRET", "VEIL_SERVICE_TOKEN", "VEIL_SECRETS_KEY", "VEIL_REDIS_PASSWORD")


def load_or_create_secrets(path: Path, env: dict[str, str]) -> dict[str, str]:
    """Values from the environment win; missing ones come from (or are added to) the file."""
    stored: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() in SECRET_NAMES:
                stored[key.strip()] = value.strip()
    changed = False
    for name in SECRET_NAMES:
        if name not in stored:
            stored[name] = secrets.token_urlsafe(48)
            changed = True
    if changed:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{k}={v}\n" for k, v in stored.items())
    return {name: env.get(name) or stored[name] for name in SECRET_NAMES}
