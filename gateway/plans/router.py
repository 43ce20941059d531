"""An API's plans, managed by its owner."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from gateway.apis.service import get_owned_or_404
from gateway.deps import Developer, Session
from gateway.plans import service
from gateway.plans.schemas import PlanCreate, PlanList, PlanOut, PlanUpdate

router = APIRouter(prefix="/api/v1/apis/{api_id}/plans", tags=["plans"])


@router.get("")
async def list_plans(api_id: str, user: Developer, session: Session) -> PlanList:
    """Every plan of the API, archived ones included (with `archived_at`)."""
    api = await get_owned_or_404(session, api_id, user)
    return await service.list_plans(session, api)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_plan(api_id: str, body: PlanCreate, user: Developer, session: Session) -> PlanOut:
    api = await get_owned_or_404(session, api_id, user)
    return service.to_out(await service.create(session, api, body))


@router.patch("/{plan_id}")
async def update_plan(
    api_id: str, plan_id: str, body: PlanUpdate, user: Developer, session: Session
) -> PlanOut:
    """Changes apply to the plan's current subscribers too, limits within a second."""
    api = await get_owned_or_404(session, api_id, user)
    plan = await service.get_or_404(session, api, plan_id)
    await service.update(session, plan, body)
    return service.to_out(plan)


@router.delete("/{plan_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_plan(api_id: str, plan_id: str, user: Developer, session: Session) -> Response:
    """Delete the plan; one with subscriptions is archived instead (its subscribers keep
    it, nobody new can pick it). Idempotent for an archived plan."""
    api = await get_owned_or_404(session, api_id, user)
    plan = await service.get_or_404(session, api, plan_id)
    await service.remove(session, plan)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
