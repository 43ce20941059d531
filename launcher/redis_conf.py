"""The configuration of a Redis that Veil starts itself (`make run`, the tests).

Redis holds the build queue and the execution event stream that billing counts,
so it always requires a password: anyone on the host could otherwise append
forged, billable events. The password goes in a 0600 file, never on a command
line (which every user of the host can read in `ps`).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote


def write_config(directory: Path, port: int, password: str, persistent: bool) -> Path:
    """Write `redis.conf` (0600) in `directory` and return its path."""
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        "protected-mode yes",
        f"dir {directory}",
        f"requirepass {password}",
        'save ""',
        f"appendonly {'yes' if persistent else 'no'}",
    ]
    path = directory / "redis.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return path


def redis_url(port: int, password: str) -> str:
    return f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
