"""Rules for suspending an API or a user.

A suspended API cannot be deployed, started, restarted or rolled back by its
owner, is off the marketplace, and the data plane answers its calls 403. Its
container is stopped the way an admin stop does it. A suspended user cannot
sign in, their access tokens stop working on the control plane, their API keys
stop working on the data plane, and every API they own is suspended too.

Each API records why it is suspended: on its own ("api") or because of its
owner ("owner"). Lifting a user's suspension lifts only the second kind, so an
API an admin suspended on purpose stays suspended. Suspending an API that is
suspended because of its owner makes it an API suspension of its own.

The functions change the session and return the `Fallout`; `carry_out` queues
the container stops and tells the session what the data plane must drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin import audit, repository
from gateway.build_queue import STOP_JOB, BuildQueue
from shared import invalidation
from shared.errors import Conflict, NotFound
from shared.invalidation import invalidate
from shared.models import Api, User
from shared.models.base import utcnow

CANCELLED_DEPLOY = "Cancelled: the API was suspended by the platform's admins."


@dataclass
class Fallout:
    """What a suspension change needs beyond its rows."""

    stop_api_ids: list[str] = field(default_factory=list)  # containers to stop
    slugs: list[str] = field(default_factory=list)  # data-plane routes to drop
    key_hashes: list[str] = field(default_factory=list)  # data-plane keys to drop
    user_ids: list[str] = field(default_factory=list)  # accounts whose bearer tokens changed


async def api_or_404(session: AsyncSession, api_id: str) -> Api:
    api = await session.get(Api, api_id)
    if api is None:
        raise NotFound("No API with this id.", code="api_not_found")
    return api


async def user_or_404(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No user with this id.", code="user_not_found")
    return user


def _clean(reason: str | None) -> str | None:
    return (reason or "").strip() or None


def _mark(api: Api, admin: User, reason: str | None, cause: str) -> None:
    api.suspended_at = utcnow()
    api.suspended_by = admin.id
    api.suspension_reason = reason
    api.suspension_cause = cause


def _lift(api: Api) -> None:
    api.suspended_at = None
    api.suspended_by = None
    api.suspension_reason = None
    api.suspension_cause = None


async def suspend_api(session: AsyncSession, admin: User, api: Api, reason: str | None) -> Fallout:
    """Suspend (again: the record is replaced, and the stop is queued once more, which
    also catches a deploy that was building the first time)."""
    reason = _clean(reason)
    _mark(api, admin, reason, "api")
    await repository.cancel_queued_deployments(session, [api.id], CANCELLED_DEPLOY)
    audit.record(session, admin, "api.suspend", "api", api.id, slug=api.slug, reason=reason)
    return Fallout(stop_api_ids=[api.id], slugs=[api.slug])


async def unsuspend_api(session: AsyncSession, admin: User, api: Api) -> Fallout:
    """Lift the suspension; the container stays stopped until its owner starts it."""
    if not api.is_suspended:
        return Fallout()  # already lifted: nothing to do, nothing to log
    owner = await session.get(User, api.owner_id)
    if owner is not None and owner.is_suspended:
        raise Conflict(
            "The owner of this API is suspended: lift the owner's suspension instead.",
            code="owner_suspended",
        )
    _lift(api)
    audit.record(session, admin, "api.unsuspend", "api", api.id, slug=api.slug)
    return Fallout(slugs=[api.slug])


async def suspend_user(
    session: AsyncSession, admin: User, user: User, reason: str | None
) -> Fallout:
    if user.id == admin.id:
        raise Conflict("You cannot suspend your own account.", code="cannot_suspend_self")
    reason = _clean(reason)
    user.suspended_at = utcnow()
    user.suspended_by = admin.id
    user.suspension_reason = reason
    apis = await repository.apis_of_owner(session, user.id)
    newly = [api for api in apis if not api.is_suspended]
    for api in newly:
        _mark(api, admin, reason, "owner")
    api_ids = [api.id for api in apis]
    await repository.cancel_queued_deployments(session, api_ids, CANCELLED_DEPLOY)
    running = await repository.apis_with_containers(session, api_ids)
    audit.record(
        session,
        admin,
        "user.suspend",
        "user",
        user.id,
        email=user.email,
        reason=reason,
        apis_suspended=[api.id for api in newly],
    )
    return Fallout(
        stop_api_ids=sorted(running),
        slugs=[api.slug for api in newly],
        key_hashes=await repository.live_key_hashes(session, user.id),
        user_ids=[user.id],
    )


async def unsuspend_user(session: AsyncSession, admin: User, user: User) -> Fallout:
    """Sign-in and keys work again; APIs suspended because of the user are lifted (their
    containers stay stopped until the owner starts them), APIs suspended on their own
    stay suspended."""
    if not user.is_suspended:
        return Fallout()
    user.suspended_at = None
    user.suspended_by = None
    user.suspension_reason = None
    lifted = [
        api
        for api in await repository.apis_of_owner(session, user.id)
        if api.is_suspended and api.suspension_cause == "owner"
    ]
    for api in lifted:
        _lift(api)
    audit.record(
        session,
        admin,
        "user.unsuspend",
        "user",
        user.id,
        email=user.email,
        apis_unsuspended=[api.id for api in lifted],
    )
    return Fallout(
        slugs=[api.slug for api in lifted],
        key_hashes=await repository.live_key_hashes(session, user.id),
        user_ids=[user.id],
    )


def change_role(session: AsyncSession, admin: User, user: User, role: str) -> Fallout:
    """Grant or take a role. The data plane forgets the account's cached state, so a
    demoted admin's access tokens stop reaching other owners' APIs at once."""
    if user.id == admin.id and role != "admin":
        raise Conflict("You cannot take the admin role from yourself.", code="cannot_demote_self")
    if user.role == role:
        return Fallout()
    audit.record(
        session,
        admin,
        "user.role",
        "user",
        user.id,
        email=user.email,
        previous=user.role,
        role=role,
    )
    user.role = role
    return Fallout(user_ids=[user.id])


async def carry_out(session: AsyncSession, builds: BuildQueue, fallout: Fallout) -> None:
    """Queue the stops and have the session drop the data plane's cached routes,
    keys and accounts once it commits (shared/invalidation.py).

    The stops go before the commit: when the queue is down the request fails (503)
    and nothing changed, rather than an API that is suspended but keeps its
    container running.
    """
    for api_id in fallout.stop_api_ids:
        await builds.enqueue(STOP_JOB, api_id)
    invalidate(session, *(invalidation.route(slug) for slug in fallout.slugs))
    invalidate(session, *(invalidation.key(key_hash) for key_hash in fallout.key_hashes))
    invalidate(session, *(invalidation.account(user_id) for user_id in fallout.user_ids))
