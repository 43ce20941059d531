"""Deploy requests: record the deployment, then hand it to the build queue."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.apis import repository as apis_repository
from gateway.apis.service import ensure_not_suspended, public_url
from gateway.build_queue import DEPLOY_JOB, BuildQueue
from gateway.deployments import repository
from gateway.deployments.schemas import DeploymentOut, DeployOut, LastExit, StatusOut
from shared.errors import Conflict, NotFound, VeilError
from shared.models import Api, ApiVersion, Deployment, User
from shared.models.base import utcnow


async def deploy(
    session: AsyncSession,
    builds: BuildQueue,
    api: Api,
    user: User,
    version_number: int | None,
    idempotency_key: str | None = None,
) -> DeployOut:
    ensure_not_suspended(api)
    api_id = api.id  # read now: a rollback below expires `api`, and async cannot reload it
    if idempotency_key is not None:
        earlier = await repository.find_by_idempotency_key(session, api_id, idempotency_key)
        if earlier is not None:
            return _replayed(earlier, version_number)
    if version_number is None:
        version_number = await apis_repository.latest_version_number(session, api.id)
        if version_number == 0:
            raise Conflict(
                "This API has no uploaded version yet: upload code before deploying.",
                code="no_version",
            )
    version = await apis_repository.get_version(session, api.id, version_number)
    if version is None:
        raise NotFound(f"This API has no version {version_number}.", code="version_not_found")
    deployment = Deployment(
        api_id=api.id,
        version_id=version.id,
        status="queued",
        requested_by=user.id,
        idempotency_key=idempotency_key,
    )
    session.add(deployment)
    # Committed before enqueueing: a worker may pick the job up at once and must
    # find the row.
    try:
        await session.commit()
    except IntegrityError:  # the same key raced in from a concurrent retry
        await session.rollback()
        assert idempotency_key is not None
        earlier = await repository.find_by_idempotency_key(session, api_id, idempotency_key)
        if earlier is None:
            raise
        return _replayed(earlier, version_number)
    try:
        await builds.enqueue(DEPLOY_JOB, deployment.id, job_id=f"deploy-{deployment.id}")
    except VeilError as exc:
        deployment.status = "failed"
        deployment.error = exc.message
        deployment.finished_at = utcnow()
        await session.commit()
        raise
    return DeployOut(deployment_id=deployment.id, status=deployment.status, version=version.number)


async def start(session: AsyncSession, builds: BuildQueue, api: Api, user: User) -> DeployOut:
    """Start a stopped API again: the version it last ran, from its kept image."""
    ensure_not_suspended(api)
    if api.active_deployment_id is not None:
        raise Conflict("This API is already serving.", code="already_running")
    last = await repository.last_stopped(session, api.id)
    if last is None:
        raise Conflict("This API has not run before: deploy it.", code="never_ran")
    return await deploy(session, builds, api, user, last[1].number)


def deployment_out(deployment: Deployment, version: ApiVersion) -> DeploymentOut:
    return DeploymentOut(
        id=deployment.id,
        version=version.number,
        status=deployment.status,
        error=deployment.error,
        created_at=deployment.created_at,
        started_at=deployment.started_at,
        ready_at=deployment.ready_at,
        finished_at=deployment.finished_at,
    )


def _replayed(earlier: tuple[Deployment, ApiVersion], version_number: int | None) -> DeployOut:
    """A retried request: answer with the deployment the first request created."""
    deployment, version = earlier
    if version_number is not None and version_number != version.number:
        raise Conflict(
            "This Idempotency-Key was already used for a deploy of another version.",
            code="idempotency_key_reused",
        )
    return DeployOut(
        deployment_id=deployment.id, status=deployment.status, version=version.number, replayed=True
    )


async def status(session: AsyncSession, api: Api, public_api_url: str) -> StatusOut:
    url = public_url(api, public_api_url)
    latest = await repository.latest_for_api(session, api.id)
    if latest is None:
        return StatusOut(api_id=api.id, status="not_deployed", url=url)
    deployment, version = latest
    return StatusOut(
        api_id=api.id,
        status=deployment.status,
        deployment_id=deployment.id,
        version=version.number,
        active_deployment_id=api.active_deployment_id,
        error=deployment.error,
        log_tail=deployment.log_tail,
        url=url,
        created_at=deployment.created_at,
        updated_at=deployment.updated_at,
        ready_at=deployment.ready_at,
        restart_count=deployment.restart_count or 0,
        last_exit=last_exit(deployment),
    )


def last_exit(deployment: Deployment) -> LastExit | None:
    """The stored description ("exit 1", "oom-killed") made into fields."""
    if not deployment.last_exit:
        return None
    text = deployment.last_exit
    code = text.removeprefix("exit ")
    return LastExit(
        description=text,
        exit_code=int(code) if text.startswith("exit ") and code.lstrip("-").isdigit() else None,
        oom_killed=text == "oom-killed",
        at=deployment.last_exit_at,
    )
