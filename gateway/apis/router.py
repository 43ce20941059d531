from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

from gateway.apis import repository, service
from gateway.apis.schemas import (
    ApiCreate,
    ApiList,
    ApiOut,
    ApiUpdate,
    RuntimeSettings,
    RuntimeSettingsOut,
)
from gateway.build_queue import TEARDOWN_JOB
from gateway.deps import Developer, Session, State
from gateway.uploads.receiver import receive_upload
from gateway.uploads.service import create_version
from shared.invalidation import invalidate, route
from shared.models import ApiVersion

router = APIRouter(prefix="/api/v1/apis", tags=["apis"])


class VersionOut(BaseModel):
    id: str
    version: int
    sha256: str
    size_bytes: int
    filename: str
    archive_kind: str
    runtime: str
    contract: str
    entry: str
    file_count: int
    created_at: datetime


class VersionList(BaseModel):
    items: list[VersionOut]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_api(body: ApiCreate, user: Developer, session: Session, state: State) -> ApiOut:
    api = await service.create(session, user, body)
    return service.to_out(api, state.settings.public_api_url)


@router.get("")
async def list_apis(user: Developer, session: Session, state: State) -> ApiList:
    apis = await repository.list_owned(session, user.id)
    return ApiList(items=[service.to_out(a, state.settings.public_api_url) for a in apis])


@router.get("/{api_id}")
async def get_api(api_id: str, user: Developer, session: Session, state: State) -> ApiOut:
    api = await service.get_owned_or_404(session, api_id, user)
    return service.to_out(api, state.settings.public_api_url)


@router.patch("/{api_id}")
async def update_api(
    api_id: str, body: ApiUpdate, user: Developer, session: Session, state: State
) -> ApiOut:
    api = await service.get_owned_or_404(session, api_id, user)
    api = await service.update(session, api, body)
    return service.to_out(api, state.settings.public_api_url)


@router.delete("/{api_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_api(api_id: str, user: Developer, session: Session, state: State) -> Response:
    api = await service.get_owned_or_404(session, api_id, user)
    # Queue the container teardown first: if the queue is down, nothing is deleted.
    await state.builds.enqueue(TEARDOWN_JOB, api.id)
    await session.delete(api)
    invalidate(session, route(api.slug))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{api_id}/settings")
async def get_settings(
    api_id: str, user: Developer, session: Session, state: State
) -> RuntimeSettingsOut:
    api = await service.get_owned_or_404(session, api_id, user)
    return service.runtime_settings_out(api, state.settings)


@router.put("/{api_id}/settings")
async def put_settings(
    api_id: str, body: RuntimeSettings, user: Developer, session: Session, state: State
) -> RuntimeSettingsOut:
    """Memory, CPU and environment apply from the next deploy; timeout and max
    concurrency at once."""
    api = await service.get_owned_or_404(session, api_id, user)
    service.set_runtime_settings(session, api, body, state.settings)
    return service.runtime_settings_out(api, state.settings)


@router.post("/{api_id}/upload", status_code=status.HTTP_201_CREATED)
async def upload(
    api_id: str, request: Request, user: Developer, session: Session, state: State
) -> VersionOut:
    """Upload code (multipart field `file`: zip, tar.gz or one source file) as a new version.

    Optional form field `runtime` forces the runtime instead of detecting it.
    """
    api = await service.get_owned_or_404(session, api_id, user)
    received = await receive_upload(
        request, "file", state.settings.max_upload_bytes, state.blobs.tmp_dir
    )
    try:
        version = await create_version(session, state.settings, state.blobs, api, user, received)
    finally:
        received.discard()  # no-op once the blob store adopted it
    return _version_out(version)


@router.get("/{api_id}/versions")
async def list_versions(api_id: str, user: Developer, session: Session) -> VersionList:
    api = await service.get_owned_or_404(session, api_id, user)
    versions = await repository.list_versions(session, api.id)
    return VersionList(items=[_version_out(v) for v in versions])


def _version_out(version: ApiVersion) -> VersionOut:
    return VersionOut(
        id=version.id,
        version=version.number,
        sha256=version.sha256,
        size_bytes=version.size_bytes,
        filename=version.filename,
        archive_kind=version.archive_kind,
        runtime=version.runtime,
        contract=version.contract,
        entry=version.entry,
        file_count=version.file_count,
        created_at=version.created_at,
    )
