"""Hostile and ordinary uploads through `extract_upload`; archives are built here."""

from __future__ import annotations

import gzip
import io
import stat
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from shared.archive import ArchiveLimits, UploadManifest, extract_upload
from shared.errors import InvalidUpload, PayloadTooLarge, VeilError

LIMITS = ArchiveLimits()
MiB = 1024 * 1024


# -- builders -------------------------------------------------------------------------


def zip_bytes(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate names we build
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return buf.getvalue()


def zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so external_attr carries st_mode
    info.external_attr = mode << 16
    return info


def member(
    name: str,
    data: bytes = b"",
    *,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
    mode: int = 0o644,
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes], gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def run(
    tmp_path: Path, data: bytes, filename: str = "upload", limits: ArchiveLimits = LIMITS
) -> tuple[UploadManifest, Path]:
    source, dest = tmp_path / "upload.bin", tmp_path / "dest"
    source.write_bytes(data)
    dest.mkdir(exist_ok=True)
    return extract_upload(source, filename, dest, limits), dest


def rejected(
    tmp_path: Path,
    data: bytes,
    code: str,
    *,
    filename: str = "upload",
    limits: ArchiveLimits = LIMITS,
    error: type[VeilError] = InvalidUpload,
) -> str:
    with pytest.raises(error) as info:
        run(tmp_path, data, filename, limits)
    assert info.value.code == code, info.value.message
    assert list((tmp_path / "dest").iterdir()) == [], "dest must be left empty"
    return info.value.message


def tree(dest: Path) -> dict[str, bytes]:
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


# -- what gets through ----------------------------------------------------------------


def test_zip_is_extracted_with_normalised_modes(tmp_path: Path) -> None:
    data = zip_bytes(
        ("main.py", b"print('hi')\n"),
        (zip_info("run.sh", stat.S_IFREG | 0o4755), b"#!/bin/sh\n"),
        ("pkg/", b""),
        ("pkg/util.py", b"X = 1\n"),
    )
    manifest, dest = run(tmp_path, data, "whatever.tar.gz")  # the filename is only a hint
    assert manifest == UploadManifest("zip", ("main.py", "pkg/util.py", "run.sh"), 28)
    assert tree(dest) == {
        "main.py": b"print('hi')\n",
        "pkg/util.py": b"X = 1\n",
        "run.sh": b"#!/bin/sh\n",
    }
    assert stat.S_IMODE((dest / "main.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755  # setuid dropped
    assert stat.S_IMODE((dest / "pkg").stat().st_mode) == 0o755


@pytest.mark.parametrize("gz", [True, False])
def test_tar_is_extracted(tmp_path: Path, gz: bool) -> None:
    data = tar_bytes(
        member(".", kind=tarfile.DIRTYPE, mode=0o755),  # `tar -C dir -czf x .` writes ./
        member("./app.py", b"app = 1\n", mode=0o6755),
        member("./lib", kind=tarfile.DIRTYPE, mode=0o777),
        member("./lib/x.py", b"x\n"),
        gz=gz,
    )
    manifest, dest = run(tmp_path, data)
    assert manifest == UploadManifest("tar", ("app.py", "lib/x.py"), 10)
    assert stat.S_IMODE((dest / "app.py").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "lib").stat().st_mode) == 0o755


def test_single_top_level_directory_is_stripped_ignoring_mac_junk(tmp_path: Path) -> None:
    data = zip_bytes(
        ("myapp/", b""),
        ("myapp/main.py", b"1"),
        ("myapp/lib/a.py", b"2"),
        ("myapp/.DS_Store", b"junk"),
        ("__MACOSX/myapp/._main.py", b"junk"),
        (".DS_Store", b"junk"),
    )
    manifest, dest = run(tmp_path, data)
    assert manifest.files == ("lib/a.py", "main.py")
    assert sorted(p.name for p in dest.iterdir()) == ["lib", "main.py"]


def test_two_top_level_entries_are_kept(tmp_path: Path) -> None:
    manifest, _ = run(tmp_path, zip_bytes(("myapp/main.py", b"1"), ("README.md", b"2")))
    assert manifest.files == ("README.md", "myapp/main.py")


def test_links_inside_the_upload_become_copies(tmp_path: Path) -> None:
    data = tar_bytes(
        member("app/main.py", b"print(1)\n", mode=0o755),
        member("app/lib/alias.py", kind=tarfile.SYMTYPE, link="../main.py"),
        member("app/chain.py", kind=tarfile.SYMTYPE, link="lib/alias.py"),
        member("app/hard.py", kind=tarfile.LNKTYPE, link="app/main.py"),
    )
    manifest, dest = run(tmp_path, data)
    assert manifest.files == ("chain.py", "hard.py", "lib/alias.py", "main.py")
    assert manifest.total_bytes == 4 * 9  # copies count against the limit too
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert (dest / "chain.py").read_bytes() == b"print(1)\n"
    assert stat.S_IMODE((dest / "hard.py").stat().st_mode) == 0o755


def test_zip_symlink_inside_is_materialised(tmp_path: Path) -> None:
    data = zip_bytes(("a.py", b"A"), (zip_info("b.py", stat.S_IFLNK | 0o777), b"a.py"))
    manifest, dest = run(tmp_path, data)
    assert manifest.files == ("a.py", "b.py")
    assert not (dest / "b.py").is_symlink()
    assert (dest / "b.py").read_bytes() == b"A"


@pytest.mark.parametrize(
    ("filename", "stored_as"),
    [("handler.py", "handler.py"), ("C:\\Users\\me\\my app.py", "my_app.py"),
     ("../../etc/evil.py", "evil.py"), (".hidden.js", "hidden.js"), ("-rf.go", "rf.go")],
)  # fmt: skip
def test_single_source_file(tmp_path: Path, filename: str, stored_as: str) -> None:
    manifest, dest = run(tmp_path, "def handle(r):\n    return 'é'\n".encode(), filename)
    assert manifest == UploadManifest("file", (stored_as,), 31)
    assert [p.name for p in dest.iterdir()] == [stored_as]
    assert stat.S_IMODE((dest / stored_as).stat().st_mode) == 0o644


def test_declared_sizes_are_not_trusted_to_reject_either(tmp_path: Path) -> None:
    # A header overstating the size is harmless: the real bytes are what count.
    data = bytearray(zip_bytes(("a.bin", bytes(2 * MiB))))
    _patch_zip_size(data, 50 * MiB)
    manifest, _ = run(tmp_path, bytes(data), limits=ArchiveLimits(max_total_bytes=3 * MiB))
    assert manifest.total_bytes == 2 * MiB


def _patch_zip_size(data: bytearray, size: int) -> None:
    """Rewrite the uncompressed size in the local header and the central directory."""
    struct.pack_into("<I", data, 22, size)
    central = data.find(b"PK\x01\x02")  # first entry
    struct.pack_into("<I", data, central + 24, size)


# -- unsafe paths ---------------------------------------------------------------------

BAD_PATHS = ["../evil.py", "a/../../evil.py", "ok/../x.py", "/etc/passwd", "C:/win.py",
             "a\\..\\evil.py", "new\nline.py", "tab\t.py"]  # fmt: skip


@pytest.mark.parametrize("name", BAD_PATHS)
def test_unsafe_zip_paths(tmp_path: Path, name: str) -> None:
    data = zip_bytes(("main.py", b"ok"), (name, b"x"))
    assert "Archive entry '" in rejected(tmp_path, data, "unsafe_path")


@pytest.mark.parametrize("name", BAD_PATHS)
def test_unsafe_tar_paths(tmp_path: Path, name: str) -> None:
    rejected(tmp_path, tar_bytes(member("main.py", b"ok"), member(name, b"x")), "unsafe_path")


def test_dot_dot_message_names_the_entry(tmp_path: Path) -> None:
    message = rejected(tmp_path, zip_bytes(("../evil.py", b"x")), "unsafe_path")
    assert message == "Archive entry '../evil.py' escapes the upload root."


def test_nul_byte_in_a_pax_path(tmp_path: Path) -> None:
    info, data = member("placeholder.py", b"x")
    info.pax_headers = {"path": "evil\x00.py"}
    rejected(tmp_path, tar_bytes((info, data)), "unsafe_path")


def test_over_long_paths(tmp_path: Path) -> None:
    limits = ArchiveLimits(max_path_length=64)
    rejected(tmp_path, zip_bytes(("a/" * 40 + "x.py", b"x")), "unsafe_path", limits=limits)
    rejected(tmp_path, tar_bytes(member("n" * 300 + ".py", b"x")), "unsafe_path")


def test_duplicate_and_conflicting_names(tmp_path: Path) -> None:
    rejected(tmp_path, zip_bytes(("main.py", b"1"), ("main.py", b"2")), "unsafe_path")
    rejected(tmp_path, tar_bytes(member("./a.py", b"1"), member("a.py", b"2")), "unsafe_path")
    rejected(tmp_path, tar_bytes(member("lib", b"file"), member("lib/x.py", b"2")), "unsafe_path")


def test_names_equal_under_case_folding_or_unicode_normalisation(tmp_path: Path) -> None:
    """One file on macOS and Windows, two here: refused, whichever way they differ."""
    nfc, nfd = "caf\u00e9.py", "cafe\u0301.py"
    for first, second in [("readme.txt", "README.TXT"), (nfc, nfd), ("Lib/a.py", "lib/b.py")]:
        message = rejected(
            tmp_path, zip_bytes((first, b"1"), (second, b"2"), ("main.py", b"")), "unsafe_path"
        )
        assert "only in case or Unicode form" in message
    # Different names that merely look alike stay allowed.
    manifest, _ = run(tmp_path, zip_bytes(("a.py", b"1"), ("a_.py", b"2")))
    assert manifest.files == ("a.py", "a_.py")


def test_writing_through_a_symlinked_directory(tmp_path: Path) -> None:
    # The classic escape: `etc -> /etc`, then a file `etc/cron.d/evil`.
    data = tar_bytes(
        member("etc", kind=tarfile.SYMTYPE, link="/etc"), member("etc/cron.d/evil", b"x")
    )
    assert "'etc' is not a directory" in rejected(tmp_path, data, "unsafe_path")


def test_tar_name_that_is_not_utf8(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tf:
        info, data = member("caf\xe9.py", b"x")
        tf.addfile(info, io.BytesIO(data))
    assert "not valid UTF-8" in rejected(tmp_path, buf.getvalue(), "unsafe_path")


# -- unsafe types and links -----------------------------------------------------------


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_and_fifo_members(tmp_path: Path, kind: bytes) -> None:
    data = tar_bytes(member("main.py", b"ok"), member("dev/thing", kind=kind))
    assert "dev/thing" in rejected(tmp_path, data, "unsafe_file_type")


@pytest.mark.parametrize("mode", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
def test_zip_entries_with_special_unix_modes(tmp_path: Path, mode: int) -> None:
    data = zip_bytes(("main.py", b"ok"), (zip_info("weird", mode | 0o644), b""))
    rejected(tmp_path, data, "unsafe_file_type")


@pytest.mark.parametrize(
    "links",
    [
        [("out", tarfile.SYMTYPE, "../../etc/passwd")],
        [("out", tarfile.SYMTYPE, "/etc/passwd")],
        [("out", tarfile.LNKTYPE, "../outside.py")],
        [("out", tarfile.LNKTYPE, "/etc/passwd")],
        # A chain whose last hop leaves the root.
        [("a", tarfile.SYMTYPE, "b"), ("b", tarfile.SYMTYPE, "sub/c"),
         ("sub/c", tarfile.SYMTYPE, "../../x")],
        [("loop1", tarfile.SYMTYPE, "loop2"), ("loop2", tarfile.SYMTYPE, "loop1")],
        [("self", tarfile.LNKTYPE, "self")],
        [("todir", tarfile.SYMTYPE, "sub")],
        [("dangling", tarfile.SYMTYPE, "nope.py")],
        [("empty", tarfile.SYMTYPE, "")],
    ],
)  # fmt: skip
def test_unsafe_tar_links(tmp_path: Path, links: list[tuple[str, bytes, str]]) -> None:
    members = [member("main.py", b"ok"), member("sub", kind=tarfile.DIRTYPE)]
    members += [member(name, kind=kind, link=target) for name, kind, target in links]
    rejected(tmp_path, tar_bytes(*members), "unsafe_link")


def test_zip_symlink_out_of_the_root(tmp_path: Path) -> None:
    link = zip_info("config.py", stat.S_IFLNK | 0o777)
    message = rejected(
        tmp_path, zip_bytes(("main.py", b"1"), (link, b"../../etc/passwd")), "unsafe_link"
    )
    assert (
        message == "Archive entry 'config.py' links to '../../etc/passwd', outside the upload root."
    )


# -- limits ---------------------------------------------------------------------------


def test_too_many_files(tmp_path: Path) -> None:
    limits = ArchiveLimits(max_files=5)
    files = [(f"f{i}.py", b"") for i in range(6)]
    rejected(tmp_path, zip_bytes(*files), "too_many_files", limits=limits, error=PayloadTooLarge)
    members = [member(f"f{i}.py") for i in range(6)]
    rejected(tmp_path, tar_bytes(*members), "too_many_files", limits=limits, error=PayloadTooLarge)


def test_zip_bomb_is_stopped_by_produced_bytes(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("main.py", b"print(1)\n")
        with zf.open("zeros.bin", "w") as out:
            for _ in range(300):
                out.write(bytes(MiB))
    assert len(buf.getvalue()) < MiB
    limits = ArchiveLimits(max_total_bytes=10 * MiB)
    rejected(tmp_path, buf.getvalue(), "archive_too_large", limits=limits, error=PayloadTooLarge)


def test_zip_header_understating_the_size_is_rejected(tmp_path: Path) -> None:
    data = bytearray(zip_bytes(("a.bin", bytes(5 * MiB)), ("main.py", b"1")))
    _patch_zip_size(data, 10)  # claims 10 bytes; decompression yields more, CRC fails
    rejected(tmp_path, bytes(data), "not_an_archive", limits=ArchiveLimits(max_total_bytes=MiB))


def test_tar_bomb_is_refused_before_decompressing(tmp_path: Path) -> None:
    info, _ = member("zeros.bin")
    info.size = 100 * 1024 * MiB  # a header claiming 100 GiB, with no data behind it
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.addfile(info)  # header only
    rejected(tmp_path, buf.getvalue(), "archive_too_large", error=PayloadTooLarge)


def test_huge_pax_record_is_capped(tmp_path: Path) -> None:
    info, data = member("main.py", b"1")
    info.pax_headers = {"comment": "x" * 20 * MiB}  # read into memory by tarfile
    limits = ArchiveLimits(max_total_bytes=MiB, max_files=10)
    rejected(
        tmp_path, tar_bytes((info, data)), "archive_too_large", limits=limits, error=PayloadTooLarge
    )


def test_link_copies_count_against_the_limit(tmp_path: Path) -> None:
    links = [member(f"l{i}", kind=tarfile.SYMTYPE, link="big") for i in range(5)]
    data = tar_bytes(member("big", bytes(600)), *links)
    limits = ArchiveLimits(max_total_bytes=2000)
    rejected(tmp_path, data, "archive_too_large", limits=limits, error=PayloadTooLarge)


def test_oversized_single_file(tmp_path: Path) -> None:
    limits = ArchiveLimits(max_total_bytes=10)
    rejected(
        tmp_path,
        b"x = 1\n" * 5,
        "archive_too_large",
        filename="a.py",
        limits=limits,
        error=PayloadTooLarge,
    )


# -- not archives, corrupt archives ---------------------------------------------------


@pytest.mark.parametrize("filename", ["upload.zip", "notes.txt", "script", "x.py.exe", "."])
def test_garbage_is_not_an_archive(tmp_path: Path, filename: str) -> None:
    rejected(tmp_path, b"just some text\n", "not_an_archive", filename=filename)


def test_empty_uploads(tmp_path: Path) -> None:
    assert rejected(tmp_path, b"", "empty_upload") == "The upload is empty."
    rejected(tmp_path, zip_bytes(), "empty_upload")  # just the end record, PK\x05\x06
    rejected(tmp_path, zip_bytes(("a/", b""), ("a/b/", b"")), "empty_upload")
    rejected(tmp_path, zip_bytes(("__MACOSX/._x", b"")), "empty_upload")


def test_truncated_archives(tmp_path: Path) -> None:
    files = [(f"f{i}.py", bytes(range(256)) * 64) for i in range(4)]
    zipped = zip_bytes(*files)
    rejected(tmp_path, zipped[: len(zipped) // 2], "not_an_archive")
    tarred = tar_bytes(*(member(name, data) for name, data in files))
    rejected(tmp_path, tarred[: len(tarred) // 2], "not_an_archive")
    plain = tar_bytes(*(member(name, data) for name, data in files), gz=False)
    rejected(tmp_path, plain[:5000], "not_an_archive")


def test_corrupt_zip_member_after_a_good_one_leaves_dest_empty(tmp_path: Path) -> None:
    data = bytearray(zip_bytes(("a.py", b"a" * 1000), ("b.py", bytes(range(256)) * 40)))
    second = data.find(b"PK\x03\x04", 4)
    data[second + 60 : second + 80] = b"\xff" * 20  # damage b.py's compressed bytes
    rejected(tmp_path, bytes(data), "not_an_archive")


def test_gzip_that_is_not_a_tar(tmp_path: Path) -> None:
    rejected(tmp_path, gzip.compress(b"print('hi')\n" * 100), "not_an_archive", filename="a.tar.gz")


def test_source_file_that_is_not_utf8(tmp_path: Path) -> None:
    message = rejected(tmp_path, b"x = '\xff\xfe'\n", "not_utf8_source", filename="main.py")
    assert "main.py" in message
    rejected(tmp_path, b"x = '\xc3", "not_utf8_source", filename="main.py")  # cut at the end


def test_encrypted_zip_entries(tmp_path: Path) -> None:
    data = bytearray(zip_bytes(("main.py", b"1")))
    data[6] |= 1  # general purpose flag bit 0: encrypted (local header...
    data[data.rfind(b"PK\x01\x02") + 8] |= 1  # ...and central directory)
    assert "encrypted" in rejected(tmp_path, bytes(data), "not_an_archive")


def test_dest_must_start_empty(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        run(tmp_path, zip_bytes(("main.py", b"1")))
    assert (tmp_path / "dest" / "keep.txt").read_text() == "mine"
