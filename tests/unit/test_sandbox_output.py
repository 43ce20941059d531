"""What a build sandbox hands back is rewritten before it can reach an image."""

from __future__ import annotations

import io
import tarfile

import pytest

from executor.sandbox_output import UnsafeBuildOutput, sanitize_tar


def archive(*members: tuple[str, bytes, int, bytes]) -> bytes:
    """A tar of (name, type, mode, content or link target) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        for name, kind, mode, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = kind, mode, 10001, 10001
            if kind == tarfile.SYMTYPE:
                info.linkname = data.decode()
                out.addfile(info)
            else:
                info.size = len(data) if kind == tarfile.REGTYPE else 0
                out.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def sanitized(data: bytes, max_bytes: int = 1 << 20) -> list[tarfile.TarInfo]:
    out = io.BytesIO()
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]  # as the stream comes
    sanitize_tar(chunks, out, max_bytes)
    out.seek(0)
    with tarfile.open(fileobj=out) as result:
        return result.getmembers()


def test_modes_lose_setuid_and_owners_become_root() -> None:
    members = sanitized(
        archive(
            ("./bin", tarfile.DIRTYPE, 0o7777, b""),
            ("./bin/su", tarfile.REGTYPE, 0o4755, b"#!"),
            ("./bin/python", tarfile.SYMTYPE, 0o777, b"/usr/bin/python3"),
            ("./dev-null", tarfile.CHRTYPE, 0o666, b""),
            ("./hard", tarfile.LNKTYPE, 0o644, b""),
        )
    )
    by_name = {m.name: m for m in members}
    assert set(by_name) == {".", "bin", "bin/su", "bin/python"}  # no device, no hard link
    assert by_name["bin/su"].mode == 0o755
    assert by_name["bin"].mode == 0o777
    assert by_name["bin/python"].linkname == "/usr/bin/python3"
    assert {(m.uid, m.gid, m.uname) for m in members} == {(0, 0, "root")}
    assert {m.mtime for m in members} == {0}  # the same input gives the same archive


@pytest.mark.parametrize(
    "members",
    [
        [("../escape", tarfile.REGTYPE, 0o644, b"x")],
        [("/etc/passwd", tarfile.REGTYPE, 0o644, b"x")],
        [("lib", tarfile.SYMTYPE, 0o777, b"/etc"), ("lib/cron", tarfile.REGTYPE, 0o644, b"x")],
    ],
)
def test_paths_out_of_the_folder_are_refused(members: list[tuple[str, bytes, int, bytes]]) -> None:
    with pytest.raises(UnsafeBuildOutput):
        sanitized(archive(*members))


def test_the_size_cap_is_counted_while_the_archive_streams() -> None:
    data = archive(
        ("a", tarfile.REGTYPE, 0o644, b"x" * 600), ("b", tarfile.REGTYPE, 0o644, b"y" * 600)
    )
    assert len(sanitized(data, max_bytes=1200)) == 3
    with pytest.raises(UnsafeBuildOutput) as caught:
        sanitized(data, max_bytes=1000)
    assert caught.value.code == "build_disk_limit"


def test_an_empty_install_still_gives_an_archive_docker_unpacks() -> None:
    members = sanitized(archive())
    assert [(m.name, m.isdir()) for m in members] == [(".", True)]
