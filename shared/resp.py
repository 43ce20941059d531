"""Redis commands packed by hand (RESP2: an array of bulk strings).

The data plane's writers and the analytics consumer send batches of commands
on connections they keep, packed here rather than by redis-py's pipeline,
which packs every argument in Python at several times the cost.
"""

from __future__ import annotations


def bulk(value: bytes | str | int) -> bytes:
    """One argument as a bulk string."""
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, int):
        value = b"%d" % value
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack(*args: bytes | str | int) -> bytes:
    """One command: its name and arguments."""
    return b"*%d\r\n" % len(args) + b"".join(map(bulk, args))
