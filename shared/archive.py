"""Safe inspection and extraction of developer uploads (zip, tar, tar.gz or one file).

The upload is hostile: its kind comes from magic bytes, never the filename; every
entry is validated before anything is written (plan, then write), and any failure
while writing empties `dest` again. Sizes are counted from bytes decompression
actually produces, and the tar stream itself is capped, so headers claiming huge
members or long-name records cannot make us read or skip through gigabytes. Files
are written one by one with `open(..., "xb")` (never `extractall`), modes normalised
(0o644, 0o755 if executable, dirs 0o755, never setuid). `__MACOSX/`, `.DS_Store`
and AppleDouble `._*` files are skipped.

Links policy: no link is ever created on disk. A symlink or hardlink whose target
(following chains) is a regular file inside the upload is materialised as a copy of
that file, its bytes counted against the size limit. Every other link (outside the
root, to a directory, to nothing, or a loop) is rejected with `unsafe_link`. A
link-free `dest` lets later readers (hashing, detection, the image build) walk it
without ever being led out of the root.
"""

from __future__ import annotations

import codecs
import gzip
import os
import re
import shutil
import stat
import struct
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from io import BufferedReader
from pathlib import Path
from typing import IO, Literal, NoReturn

from shared.errors import InvalidUpload, PayloadTooLarge

_CHUNK = 64 * 1024
_SOURCE_SUFFIXES = (".py", ".js", ".go")
_MAX_LINK_HOPS = 32
_MAX_LINK_TARGET = 4096
_MAX_NAME_COMPONENT = 255  # bytes; what Linux filesystems accept
_TAR_OVERHEAD_PER_ENTRY = 8 * 1024  # header blocks, pax/long-name records, padding
_FILE_MODE, _EXEC_MODE, _DIR_MODE = 0o644, 0o755, 0o755
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# What the stdlib readers raise on bad input; zipfile raises RuntimeError for encrypted
# members and NotImplementedError (a RuntimeError) for unknown compression methods.
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, zlib.error, struct.error, EOFError)
_READ_ERRORS = (*_CORRUPT, OSError, ValueError, RuntimeError)
# Zip entries carry a unix st_mode, tar members a type flag.
_SPECIAL_TYPES: dict[int | bytes, str] = {
    stat.S_IFCHR: "character device", tarfile.CHRTYPE: "character device",
    stat.S_IFBLK: "block device", tarfile.BLKTYPE: "block device",
    stat.S_IFIFO: "FIFO (named pipe)", tarfile.FIFOTYPE: "FIFO (named pipe)",
    stat.S_IFSOCK: "socket",
}  # fmt: skip

_Kind = Literal["file", "dir", "symlink", "hardlink"]
_Parts = tuple[str, ...]


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int = 2000
    # Uncompressed, counted from bytes actually produced, never trusting headers.
    max_total_bytes: int = 200 * 1024 * 1024
    max_path_length: int = 255 * 4


@dataclass(frozen=True)
class UploadManifest:
    kind: Literal["zip", "tar", "file"]
    files: tuple[str, ...]  # relative posix paths of regular files, sorted
    total_bytes: int


@dataclass(frozen=True)
class _Entry:
    parts: _Parts  # validated archive path
    kind: _Kind
    executable: bool
    open: Callable[[], IO[bytes]]
    link: str = ""  # raw target of a symlink or hardlink

    @property
    def name(self) -> str:
        return "/".join(self.parts)


@dataclass(frozen=True)
class _Plan:
    dirs: list[_Parts]
    files: list[tuple[_Parts, _Entry]]
    copies: list[tuple[_Parts, _Parts, bool]]  # link path, target file path, executable


def extract_upload(
    source: Path, filename: str, dest: Path, limits: ArchiveLimits
) -> UploadManifest:
    """Validate the upload at `source` and unpack it into the empty directory `dest`."""
    if any(dest.iterdir()):
        # A caller bug, not bad input; refusing also keeps the cleanup below from
        # deleting files this call did not write.
        raise ValueError(f"Extraction directory {dest} is not empty.")
    try:
        return _extract(source, filename, dest, limits)
    except BaseException:
        _clear(dest)
        raise


def _extract(source: Path, filename: str, dest: Path, limits: ArchiveLimits) -> UploadManifest:
    if source.stat().st_size == 0:
        _fail("empty_upload", "The upload is empty.")
    with source.open("rb") as fh:
        head = fh.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _extract_zip(source, dest, limits)
    if head.startswith(b"\x1f\x8b"):
        return _extract_tar(source, dest, limits, compressed=True)
    if head[257:262] == b"ustar":
        return _extract_tar(source, dest, limits, compressed=False)
    return _extract_single(source, filename, dest, limits)


def _extract_zip(source: Path, dest: Path, limits: ArchiveLimits) -> UploadManifest:
    try:
        zf = zipfile.ZipFile(source)
    except _READ_ERRORS as exc:
        msg = "The upload looks like a zip archive but is corrupt or truncated."
        raise InvalidUpload(msg, code="not_an_archive") from exc
    with zf:
        if len(zf.infolist()) > limits.max_files:
            _too_many(limits)
        entries = [e for info in zf.infolist() if (e := _zip_entry(zf, info, limits))]
        files, total = _write(_plan(entries), dest, limits)
    return UploadManifest("zip", files, total)


def _zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ArchiveLimits) -> _Entry | None:
    raw = info.filename
    parts = _clean(raw, limits)
    mode = info.external_attr >> 16  # unix st_mode, when the zip was made on unix
    file_type = stat.S_IFMT(mode)
    kind: _Kind
    if file_type == stat.S_IFLNK:
        kind = "symlink"
    elif raw.endswith("/") or file_type == stat.S_IFDIR:
        kind = "dir"
    elif file_type in (0, stat.S_IFREG):
        kind = "file"
    else:
        _bad_type(raw, _SPECIAL_TYPES.get(file_type, "special file"))
    if info.flag_bits & 0x1:
        _entry_fail("not_an_archive", raw, "is encrypted; Veil cannot read encrypted archives.")
    if _is_junk(parts, kind):
        return None
    opener = partial(zf.open, info)
    link = ""
    if kind == "symlink":  # a zip symlink stores its target as the entry's content
        with _open_member(opener, raw) as stream:
            data = b"".join(_read_chunks(stream, raw, limit=_MAX_LINK_TARGET + 1))
        try:
            link = data.decode("utf-8") if len(data) <= _MAX_LINK_TARGET else ""
        except UnicodeDecodeError:
            link = ""  # rejected as "not a valid link target" when resolved
    return _Entry(parts, kind, bool(mode & 0o111), opener, link)


def _extract_tar(
    source: Path, dest: Path, limits: ArchiveLimits, *, compressed: bool
) -> UploadManifest:
    cap = limits.max_total_bytes + _TAR_OVERHEAD_PER_ENTRY * (limits.max_files + 2)
    raw_stream: gzip.GzipFile | BufferedReader = (
        gzip.GzipFile(source) if compressed else source.open("rb")
    )
    with closing(_CappedStream(raw_stream, cap, limits)) as stream:
        try:
            # Closed by `with tf` below; opening it inside a `with` would make this
            # `except` swallow errors raised while extracting.
            tf = tarfile.open(fileobj=stream, mode="r:", encoding="utf-8")  # noqa: SIM115
        except _READ_ERRORS as exc:
            what = "a valid tar.gz archive" if compressed else "a valid tar archive"
            msg = f"The upload is not {what}; it is corrupt, truncated or of another format."
            raise InvalidUpload(msg, code="not_an_archive") from exc
        with tf:
            files, total = _write(_plan(_tar_entries(tf, limits)), dest, limits)
    return UploadManifest("tar", files, total)


def _tar_entries(tf: tarfile.TarFile, limits: ArchiveLimits) -> list[_Entry]:
    entries: list[_Entry] = []
    count = declared = 0
    members = iter(tf)
    while True:
        try:
            member = next(members, None)
        except _READ_ERRORS as exc:
            msg = "The tar archive is corrupt or truncated."
            raise InvalidUpload(msg, code="not_an_archive") from exc
        if member is None:
            return entries
        count += 1
        if count > limits.max_files:
            _too_many(limits)
        raw = member.name
        parts = _clean(raw, limits)
        kind: _Kind
        if member.issparse():
            _bad_type(raw, "sparse file")
        elif member.isreg():
            kind = "file"
            # Checked before tarfile skips past the member, so a header claiming
            # terabytes is refused without decompressing them.
            declared += member.size
            if declared > limits.max_total_bytes:
                _too_large(limits)
        elif member.isdir():
            kind = "dir"
        elif member.issym():
            kind = "symlink"
        elif member.islnk():
            kind = "hardlink"
        else:
            _bad_type(raw, _SPECIAL_TYPES.get(member.type, "special file"))
        if not _is_junk(parts, kind):
            opener = partial(_tar_open, tf, member)
            entries.append(_Entry(parts, kind, bool(member.mode & 0o111), opener, member.linkname))


def _tar_open(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = tf.extractfile(member)
    if stream is None:  # only for non-regular members, which never get here
        raise tarfile.ReadError(f"{member.name} has no data")
    return stream


class _CappedStream:
    """Read-only view of a (decompressed) tar stream that refuses to pass `cap` bytes.

    tarfile trusts header sizes when it skips members and when it reads pax or GNU
    long-name records into memory; capping what it reads bounds time and memory.
    """

    def __init__(
        self, inner: gzip.GzipFile | BufferedReader, cap: int, limits: ArchiveLimits
    ) -> None:
        self._inner, self._cap, self._limits = inner, cap, limits

    def read(self, size: int = -1, /) -> bytes:
        # Refuse before reading, so one oversized record is never held in memory.
        if size < 0 or self._inner.tell() + size > self._cap:
            _too_large(self._limits)
        return self._inner.read(size)

    def seek(self, pos: int, /) -> int:
        if pos > self._cap:
            _too_large(self._limits)
        return self._inner.seek(pos)

    def tell(self) -> int:
        return self._inner.tell()

    def write(self, b: bytes, /) -> NoReturn:
        raise OSError("read-only stream")

    def close(self) -> None:
        self._inner.close()


def _extract_single(
    source: Path, filename: str, dest: Path, limits: ArchiveLimits
) -> UploadManifest:
    name = _safe_basename(filename)
    if name is None:
        _fail(
            "not_an_archive",
            "The upload is not a zip, tar or tar.gz archive, nor a single .py, .js or .go "
            "source file.",
        )
    budget = _Budget(limits)
    decoder = codecs.getincrementaldecoder("utf-8")()
    target = dest / name
    try:
        with source.open("rb") as src, open(target, "xb") as out:
            for chunk in iter(partial(src.read, _CHUNK), b""):
                budget.add(len(chunk))
                decoder.decode(chunk)
                out.write(chunk)
        decoder.decode(b"", final=True)  # a multi-byte sequence cut off at the end
    except UnicodeDecodeError:
        _fail("not_utf8_source", f"The file '{name}' is not UTF-8 text; source must be UTF-8.")
    os.chmod(target, _FILE_MODE)
    return UploadManifest("file", (name,), budget.total)


def _safe_basename(filename: str) -> str | None:
    base = re.split(r"[/\\]", filename)[-1]
    # No leading '-' either: the name may end up as a process argument.
    base = _UNSAFE_FILENAME_CHARS.sub("_", base).lstrip(".-")
    if not base or len(base) > 100 or not base.endswith(_SOURCE_SUFFIXES):
        return None
    return base


def _clean(raw: str, limits: ArchiveLimits) -> _Parts:
    """Split an archive path into safe components, or raise `unsafe_path`."""
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        _entry_fail("unsafe_path", raw, "contains control characters.")
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:  # tarfile keeps undecodable bytes as surrogates
        _entry_fail("unsafe_path", raw, "has a name that is not valid UTF-8.")
    if size > limits.max_path_length:
        _entry_fail("unsafe_path", raw, f"is longer than {limits.max_path_length} bytes.")
    if "\\" in raw:
        _entry_fail("unsafe_path", raw, "uses backslashes; archive paths must use '/'.")
    if raw.startswith("/") or _DRIVE.match(raw):
        _entry_fail("unsafe_path", raw, "is an absolute path.")
    parts = tuple(p for p in raw.split("/") if p not in ("", "."))
    if ".." in parts:
        _entry_fail("unsafe_path", raw, "escapes the upload root.")
    if any(len(p.encode("utf-8")) > _MAX_NAME_COMPONENT for p in parts):
        _entry_fail("unsafe_path", raw, f"has a name longer than {_MAX_NAME_COMPONENT} bytes.")
    return parts


def _is_junk(parts: _Parts, kind: _Kind) -> bool:
    if not parts:  # "./" is the root itself; any other empty name is nonsense
        if kind != "dir":
            _fail("unsafe_path", "The archive has an entry with an empty name.")
        return True
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def _plan(entries: list[_Entry]) -> _Plan:
    by_name: dict[str, _Entry] = {}
    spellings: dict[str, str] = {}  # a path (or folder) folded → how the archive spells it
    for entry in entries:
        if entry.name in by_name:
            _entry_fail("unsafe_path", entry.name, "appears more than once.")
        by_name[entry.name] = entry
        # Names equal under case folding or Unicode normalisation (README.txt and
        # readme.txt, an NFC and an NFD é) are one file on macOS and Windows, and
        # one of them would be lost or the other shadowed: refused like duplicates.
        for i in range(1, len(entry.parts) + 1):
            spelled = "/".join(entry.parts[:i])
            folded = unicodedata.normalize("NFC", spelled).casefold()
            seen = spellings.setdefault(folded, spelled)
            if seen != spelled:
                why = f"differs from '{_show(seen)}' only in case or Unicode form."
                _entry_fail("unsafe_path", spelled, why)
    for entry in entries:
        for i in range(1, len(entry.parts)):
            parent = by_name.get("/".join(entry.parts[:i]))
            if parent is not None and parent.kind != "dir":
                why = f"is not a directory, yet '{_show(entry.name)}' is inside it."
                _entry_fail("unsafe_path", parent.name, why)
    if all(e.kind == "dir" for e in entries):
        _fail("empty_upload", "The archive contains no files.")

    # One top-level directory holding everything (a zipped folder): strip it.
    strip = len({e.parts[0] for e in entries}) == 1 and all(
        len(e.parts) > 1 or e.kind == "dir" for e in entries
    )
    skip = 1 if strip else 0
    plan = _Plan([], [], [])
    for entry in entries:
        parts = entry.parts[skip:]
        if not parts:
            continue
        if entry.kind == "dir":
            plan.dirs.append(parts)
        elif entry.kind == "file":
            plan.files.append((parts, entry))
        else:
            target = _resolve_link(entry, by_name)
            plan.copies.append((parts, target.parts[skip:], target.executable))
    return plan


def _resolve_link(entry: _Entry, by_name: dict[str, _Entry]) -> _Entry:
    """Follow a link, and any chain, to the regular file it ends at, or raise."""
    current = entry
    for _ in range(_MAX_LINK_HOPS):
        if current.kind == "file":
            return current
        # A symlink is relative to its directory; a tar hardlink names an archive path.
        base = current.parts[:-1] if current.kind == "symlink" else ()
        found = by_name.get("/".join(_join_link(base, current)))
        if found is None or found.kind == "dir":
            why = f"links to '{_show(current.link)}', which is not a file in the upload."
            _entry_fail("unsafe_link", current.name, why)
        current = found
    _entry_fail("unsafe_link", entry.name, "is part of a link loop.")


def _join_link(base: _Parts, entry: _Entry) -> _Parts:
    link = entry.link
    outside = f"links to '{_show(link)}', outside the upload root."
    if not link or "\\" in link or any(ord(c) < 32 or ord(c) == 127 for c in link):
        _entry_fail("unsafe_link", entry.name, "has an invalid link target.")
    if link.startswith("/") or _DRIVE.match(link):
        _entry_fail("unsafe_link", entry.name, outside)
    parts = list(base)
    for part in link.split("/"):
        if part == "..":
            if not parts:
                _entry_fail("unsafe_link", entry.name, outside)
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return tuple(parts)


class _Budget:
    """Running total of bytes produced; raises the moment it passes the limit."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits, self.total = limits, 0

    def add(self, n: int) -> None:
        self.total += n
        if self.total > self.limits.max_total_bytes:
            _too_large(self.limits)


def _write(plan: _Plan, dest: Path, limits: ArchiveLimits) -> tuple[tuple[str, ...], int]:
    budget = _Budget(limits)
    made: set[_Parts] = set()

    def ensure_dir(parts: _Parts) -> None:
        for i in range(1, len(parts) + 1):
            if parts[:i] not in made:
                # dest holds no links (none are ever created), so nothing redirects this.
                dest.joinpath(*parts[:i]).mkdir(mode=_DIR_MODE)
                made.add(parts[:i])

    def copy(src: IO[bytes], name: str, parts: _Parts, executable: bool) -> None:
        ensure_dir(parts[:-1])
        path = dest.joinpath(*parts)
        with open(path, "xb") as out:
            for chunk in _read_chunks(src, name):
                budget.add(len(chunk))  # before writing: never a byte past the limit
                out.write(chunk)
        os.chmod(path, _EXEC_MODE if executable else _FILE_MODE)

    for parts in plan.dirs:
        ensure_dir(parts)
    for parts, entry in plan.files:
        with _open_member(entry.open, entry.name) as src:
            copy(src, entry.name, parts, entry.executable)
    for parts, target, executable in plan.copies:  # after files: targets now exist
        with open(dest.joinpath(*target), "rb") as src:
            copy(src, "/".join(parts), parts, executable)
    for parts in made:
        os.chmod(dest.joinpath(*parts), _DIR_MODE)  # mkdir's mode is subject to the umask
    files = [p for p, _ in plan.files] + [p for p, _, _ in plan.copies]
    return tuple(sorted("/".join(p) for p in files)), budget.total


def _open_member(opener: Callable[[], IO[bytes]], name: str) -> IO[bytes]:
    try:
        return opener()
    except _READ_ERRORS as exc:
        _corrupt(name, exc)


def _read_chunks(stream: IO[bytes], name: str, limit: int | None = None) -> Iterator[bytes]:
    read = 0
    while limit is None or read < limit:
        try:
            chunk = stream.read(_CHUNK if limit is None else min(_CHUNK, limit - read))
        except _READ_ERRORS as exc:
            _corrupt(name, exc)
        if not chunk:
            return
        read += len(chunk)
        yield chunk


def _clear(dest: Path) -> None:
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _show(text: str, limit: int = 200) -> str:
    """Printable, bounded form of an untrusted name for error messages."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _fail(code: str, message: str) -> NoReturn:
    raise InvalidUpload(message, code=code)


def _entry_fail(code: str, name: str, why: str) -> NoReturn:
    raise InvalidUpload(f"Archive entry '{_show(name)}' {why}", code=code)


def _corrupt(name: str, exc: BaseException) -> NoReturn:
    why = "could not be read; the archive is corrupt or truncated."
    raise InvalidUpload(f"Archive entry '{_show(name)}' {why}", code="not_an_archive") from exc


def _bad_type(raw: str, what: str) -> NoReturn:
    why = f"is a {what}; only regular files, directories and links are allowed."
    _entry_fail("unsafe_file_type", raw, why)


def _too_many(limits: ArchiveLimits) -> NoReturn:
    msg = f"The archive has more than {limits.max_files} entries, the limit for one upload."
    raise PayloadTooLarge(msg, code="too_many_files")


def _too_large(limits: ArchiveLimits) -> NoReturn:
    size, mib = limits.max_total_bytes, 1024 * 1024
    shown = f"{size // mib} MiB" if size % mib == 0 else f"{size} bytes"
    msg = f"The upload unpacks to more than {shown}, the limit for one upload."
    raise PayloadTooLarge(msg, code="archive_too_large")
