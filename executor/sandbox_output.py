"""What a build sandbox hands back, made safe to put into an image.

The dependency install runs tenant code (pip build backends, npm lifecycle
scripts), so the tar it produces is hostile: it is rewritten entry by entry into
a fresh archive that Docker's `ADD` unpacks into the image. Only directories,
regular files and symlinks survive; every entry is owned by root (the app, uid
10001, can read but never change them); modes keep only the permission bits
(no setuid, setgid or sticky bit ever reaches an image); names may not be
absolute, contain `..`, or pass through a symlink of the same archive (so no
entry is written through a link to somewhere else); and the bytes are counted
while they stream, against the build's disk cap.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import IO

from shared.errors import VeilError

_PERMISSIONS = 0o777  # what survives of a mode: never 0o7000 (setuid, setgid, sticky)
_MAX_NAME = 4096


class UnsafeBuildOutput(VeilError):
    status = 422
    code = "build_output_unsafe"


class _ChunkReader(io.RawIOBase):
    """A file over an iterator of byte chunks (the engine's exec stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _clean_name(raw: str) -> str | None:
    """The entry's relative name, or None for the archive's root itself."""
    if len(raw) > _MAX_NAME or "\x00" in raw:
        raise UnsafeBuildOutput(f"The build produced an unusable file name: {raw[:200]!r}.")
    path = PurePosixPath(raw)
    if path.is_absolute() or ".." in path.parts:
        raise UnsafeBuildOutput(f"The build produced a path leading out of its folder: {raw!r}.")
    parts = [p for p in path.parts if p != "."]
    return "/".join(parts) if parts else None


def sanitize_tar(chunks: Iterable[bytes], out: IO[bytes], max_bytes: int) -> int:
    """Rewrite the tar in `chunks` into `out` as described above; return its file bytes.

    More than `max_bytes` of file content is refused (UnsafeBuildOutput, code
    build_disk_limit) as soon as it is read, not after.
    """
    total = 0
    links: set[str] = set()
    source = io.BufferedReader(_ChunkReader(chunks), buffer_size=64 * 1024)
    with (
        tarfile.open(fileobj=source, mode="r|") as reader,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as writer,
    ):
        writer.addfile(_entry(".", tarfile.DIRTYPE, 0o755))  # never an empty archive
        for member in reader:
            name = _clean_name(member.name)
            if name is None:
                continue
            if any(name == link or name.startswith(link + "/") for link in links):
                raise UnsafeBuildOutput(f"The build wrote {name!r} through a symbolic link.")
            if member.isdir():
                writer.addfile(_entry(name, tarfile.DIRTYPE, member.mode))
            elif member.issym():
                links.add(name)
                info = _entry(name, tarfile.SYMTYPE, 0o777)
                info.linkname = member.linkname
                writer.addfile(info)
            elif member.isfile():
                total += member.size
                if total > max_bytes:
                    raise UnsafeBuildOutput(
                        f"The dependencies are larger than the build's disk limit"
                        f" ({max_bytes // (1024 * 1024)} MB).",
                        code="build_disk_limit",
                    )
                info = _entry(name, tarfile.REGTYPE, member.mode)
                info.size = member.size
                writer.addfile(info, reader.extractfile(member))
            # Hard links, devices, FIFOs: nothing an app needs; dropped.
    return total


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode & _PERMISSIONS
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0  # the same dependencies give the same archive (and Docker's cache key)
    return info
