"""This host's processes, read from /proc (Linux)."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces
    and parentheses): [0] is the state, [1] the parent pid, [19] the start time in
    clock ticks since boot (proc(5) fields 3, 4 and 22). OSError if it is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
