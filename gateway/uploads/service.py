"""Turns a received upload into an immutable, content-addressed API version."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.apis import repository
from gateway.uploads.receiver import ReceivedUpload
from runtimes.detect import Detection, detect_runtime
from shared.archive import ArchiveLimits, UploadManifest, extract_upload
from shared.blobs import BlobStore
from shared.errors import Conflict, InvalidUpload
from shared.models import Api, ApiVersion, User
from shared.settings import GatewaySettings

# Runtimes the executor can build (runtimes/registry.py).
SUPPORTED_RUNTIMES = ("python", "node", "go")


def inspect_upload(
    received: ReceivedUpload, limits: ArchiveLimits, forced_runtime: str | None, tmp_dir: Path
) -> tuple[UploadManifest, Detection]:
    """Extract into a scratch directory (validating every entry) and detect the runtime."""
    scratch = Path(tempfile.mkdtemp(dir=tmp_dir, prefix="inspect-"))
    try:
        manifest = extract_upload(received.path, received.filename, scratch, limits)
        detection = detect_runtime(scratch, forced_runtime)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if detection.runtime not in SUPPORTED_RUNTIMES:
        raise InvalidUpload(
            f"This looks like a {detection.runtime} project, which this Veil cannot build;"
            f" it builds {', '.join(SUPPORTED_RUNTIMES)}.",
            code="runtime_not_supported",
        )
    return manifest, detection


async def create_version(
    session: AsyncSession,
    settings: GatewaySettings,
    blobs: BlobStore,
    api: Api,
    user: User,
    received: ReceivedUpload,
) -> ApiVersion:
    limits = settings.archive_limits
    forced = received.fields.get("runtime") or None
    manifest, detection = await asyncio.to_thread(
        inspect_upload, received, limits, forced, blobs.tmp_dir
    )
    await asyncio.to_thread(blobs.adopt, received.path, received.sha256)
    for _attempt in range(3):
        number = await repository.latest_version_number(session, api.id) + 1
        version = ApiVersion(
            api_id=api.id,
            number=number,
            sha256=received.sha256,
            size_bytes=received.size,
            filename=Path(received.filename).name[:255] or "upload",
            archive_kind=manifest.kind,
            runtime=detection.runtime,
            contract=detection.contract,
            entry=detection.entry,
            file_count=len(manifest.files),
            uploaded_by=user.id,
        )
        try:
            async with session.begin_nested():
                session.add(version)
            return version
        except IntegrityError:  # two uploads to one API raced for the same number
            continue
    raise Conflict("Too many concurrent uploads to this API; try again.", code="upload_race")
