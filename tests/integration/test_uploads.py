from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.settings import GatewaySettings
from tests.integration.conftest import (
    SAMPLE_APP,
    assert_error,
    create_api,
    signup,
    upload,
    zip_bytes,
)


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def blob_files(settings: GatewaySettings) -> list[Path]:
    return sorted(p for p in (settings.data_dir / "blobs" / "sha256").rglob("*") if p.is_file())


async def _versions(client: httpx.AsyncClient, headers: dict[str, str], api_id: str) -> list[int]:
    response = await client.get(f"/api/v1/apis/{api_id}/versions", headers=headers)
    return [v["version"] for v in response.json()["items"]]


async def test_each_upload_is_a_new_content_addressed_version(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    archive = zip_bytes({"myapp/main.py": SAMPLE_APP, "myapp/requirements.txt": b""})

    first = await upload(gateway, alice, api["id"], archive)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["version"] == 1
    assert body["sha256"] == hashlib.sha256(archive).hexdigest()
    assert (body["runtime"], body["contract"], body["entry"]) == ("python", "server", "main.py")
    assert body["archive_kind"] == "zip"

    second = await upload(gateway, alice, api["id"], tar_gz({"app.py": SAMPLE_APP}), "app.tar.gz")
    assert second.json()["version"] == 2
    assert second.json()["entry"] == "app.py"
    third = await upload(gateway, alice, api["id"], SAMPLE_APP, "server.py")
    assert third.json()["archive_kind"] == "file"
    same_again = await upload(gateway, alice, api["id"], archive)
    assert same_again.json()["version"] == 4
    assert same_again.json()["sha256"] == body["sha256"]

    assert await _versions(gateway, alice, api["id"]) == [4, 3, 2, 1]
    blobs = blob_files(gateway_settings)
    assert len(blobs) == 3  # identical content is stored once
    stored = next(p for p in blobs if p.name == body["sha256"])
    assert stored.read_bytes() == archive


@pytest.mark.parametrize(
    ("content", "filename", "status", "code"),
    [
        (b"just some bytes \x00\x01", "app.zip", 422, "not_an_archive"),
        (zip_bytes({"../evil.py": b"x"}), "app.zip", 422, "unsafe_path"),
        (zip_bytes({"/etc/cron.d/evil": b"x", "main.py": b"x"}), "app.zip", 422, "unsafe_path"),
        (zip_bytes({"README.md": b"hello"}), "app.zip", 422, "unknown_runtime"),
        (
            zip_bytes({"requirements.txt": b"flask\n", "util.py": b"x = 1", "lib.py": b"y"}),
            "a.zip",
            422,
            "no_entry_point",
        ),
        (b"", "main.py", 422, "empty_upload"),
        (b"\xff\xfe not utf8", "main.py", 422, "not_utf8_source"),
        (tar_gz({f"f{i}.py": b"x" for i in range(30)}), "a.tgz", 413, "too_many_files"),
    ],
)
async def test_bad_uploads_are_refused_and_leave_nothing(
    module_gateway: httpx.AsyncClient,
    module_gateway_settings: GatewaySettings,
    content: bytes,
    filename: str,
    status: int,
    code: str,
) -> None:
    # One gateway for every case: each must leave nothing, so none can see another's.
    gateway, gateway_settings = module_gateway, module_gateway_settings
    gateway_settings.max_archive_files = 20
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    response = await upload(gateway, alice, api["id"], content, filename)
    assert_error(response, status, code)
    assert await _versions(gateway, alice, api["id"]) == []
    assert blob_files(gateway_settings) == []
    assert list((gateway_settings.data_dir / "blobs" / "tmp").iterdir()) == []


async def test_zip_bomb_is_413(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    gateway_settings.max_archive_bytes = 1024 * 1024
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    bomb = zip_bytes({"main.py": b"x = 1\n", "zeros.bin": b"\0" * (20 * 1024 * 1024)})
    assert len(bomb) < 100_000
    assert_error(await upload(gateway, alice, api["id"], bomb), 413, "archive_too_large")
    assert blob_files(gateway_settings) == []


async def test_oversized_upload_is_413_before_storing(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    big = b"#" * (gateway_settings.max_upload_bytes + 1)
    response = await upload(gateway, alice, api["id"], big, "main.py")
    assert_error(response, 413, "upload_too_large")
    assert blob_files(gateway_settings) == []
    assert list((gateway_settings.data_dir / "blobs" / "tmp").iterdir()) == []


async def test_oversized_chunked_upload_is_cut_off_while_streaming(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    """No Content-Length to trust: the limit is enforced on the bytes as they arrive."""
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    boundary = "veilboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="main.py"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    produced = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal produced
        yield head
        for _ in range(64):
            chunk = b"#" * 65536
            produced += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await gateway.post(
        f"/api/v1/apis/{api['id']}/upload",
        content=body(),
        headers={**alice, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(response, 413, "upload_too_large")
    assert blob_files(gateway_settings) == []


async def test_missing_field_and_wrong_content_type(gateway: httpx.AsyncClient) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    no_file = await gateway.post(
        f"/api/v1/apis/{api['id']}/upload",
        data={"runtime": "python"},
        files={"other": ("x", b"1")},
        headers=alice,
    )
    assert_error(no_file, 422, "missing_file")
    as_json = await gateway.post(f"/api/v1/apis/{api['id']}/upload", json={"a": 1}, headers=alice)
    assert_error(as_json, 415, "unsupported_media_type")
    broken = await gateway.post(
        f"/api/v1/apis/{api['id']}/upload",
        content=b'--x\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
        headers={**alice, "Content-Type": "multipart/form-data; boundary=y"},
    )
    assert broken.status_code in (400, 422)
    assert broken.json()["error"]["code"] in ("malformed_multipart", "missing_file")


async def test_upload_to_someone_elses_api_is_404(gateway: httpx.AsyncClient) -> None:
    alice = await signup(gateway)
    bob = await signup(gateway)
    api = await create_api(gateway, alice)
    response = await upload(gateway, bob, api["id"], SAMPLE_APP, "main.py")
    assert_error(response, 404, "api_not_found")
