"""Per-API secrets: set, replace, list names, delete. Values are write-only."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from gateway.apis.service import get_owned_or_404
from gateway.deps import Developer, Session, State
from gateway.secrets import service
from gateway.secrets.schemas import SecretIn, SecretList, SecretOut

router = APIRouter(prefix="/api/v1/apis/{api_id}/secrets", tags=["secrets"])


@router.get("")
async def list_secrets(api_id: str, user: Developer, session: Session) -> SecretList:
    """Names and timestamps of the API's secrets; values are never returned."""
    api = await get_owned_or_404(session, api_id, user)
    return await service.list_secrets(session, api)


@router.put("/{name}")
async def put_secret(
    api_id: str, name: str, body: SecretIn, user: Developer, session: Session, state: State
) -> SecretOut:
    """Create or replace a secret; it reaches the container from the next deploy or start."""
    api = await get_owned_or_404(session, api_id, user)
    secret = await service.put_secret(
        session, api, name, body.value.get_secret_value(), state.settings
    )
    return service.to_out(secret)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_secret(api_id: str, name: str, user: Developer, session: Session) -> Response:
    api = await get_owned_or_404(session, api_id, user)
    await service.delete_secret(session, api, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
