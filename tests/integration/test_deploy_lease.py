"""A deployment's life outside a job: the lease that fences a deploy job (a job
whose deployment was taken over by another, a restarted worker resuming it,
can change nothing any more), and the end of its live log once it settled."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor import repository
from shared.models import Deployment
from shared.settings import GatewaySettings
from tests.integration.conftest import SAMPLE_APP, create_api, signup, upload, zip_bytes


@pytest.fixture
def settings(gateway_settings: GatewaySettings) -> GatewaySettings:
    return gateway_settings  # the sessions fixture's database: the gateway's


async def queued(gateway: httpx.AsyncClient) -> tuple[str, str, dict[str, str]]:
    """A queued deployment of a new API: (deployment id, API id, its owner's headers)."""
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    assert (await upload(gateway, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP}))).is_success
    answer = await gateway.post(f"/api/v1/apis/{api['id']}/deploy", headers=alice)
    return str(answer.json()["deployment_id"]), str(api["id"]), alice


async def test_a_job_that_lost_its_lease_changes_nothing(
    gateway: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    deployment_id, _, _ = await queued(gateway)
    async with sessions() as first, sessions() as second:
        old = await repository.take_lease(first, deployment_id)
        new = await repository.take_lease(second, deployment_id)  # the resumed job
        assert old is not None
        assert new not in (None, old)
        # The old job's next state change is refused, and so is its failure report.
        row = await first.get(Deployment, deployment_id)
        assert row is not None
        row.status = "starting"
        with pytest.raises(repository.LeaseLost):
            await repository.hold_lease(first, deployment_id, old)
        await first.rollback()
        await repository.mark_failed(first, deployment_id, "stale", None, old)
        await first.commit()
        # The new one goes on.
        await repository.hold_lease(second, deployment_id, new)
        await second.commit()
    async with sessions() as session:
        row = await session.get(Deployment, deployment_id)
        assert row is not None
        assert (row.status, row.error, row.lease) == ("queued", None, new)


async def test_a_finished_deployment_is_not_taken(
    gateway: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    deployment_id, _, _ = await queued(gateway)
    async with sessions() as session:
        await repository.mark_failed(session, deployment_id, "gone", None)
        await session.commit()
        assert await repository.take_lease(session, deployment_id) is None


async def test_a_crash_looping_deployment_s_live_log_ends(
    gateway: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    """Once its build feed has expired, the live log of a settled deployment is
    replayed from the row and ends, whichever way it settled."""
    deployment_id, api_id, owner = await queued(gateway)
    async with sessions() as session:
        row = await session.get(Deployment, deployment_id)
        assert row is not None
        row.status, row.error = "crash-looping", "crash-looping: the container died 6 times"
        await session.commit()
    async with asyncio.timeout(10):  # it used to wait on the expired feed for ever
        answer = await gateway.get(
            f"/api/v1/apis/{api_id}/deployments/{deployment_id}/events", headers=owner
        )
    assert answer.status_code == 200
    assert answer.text.rstrip().endswith(
        'data: {"status":"crash-looping","error":"crash-looping: the container died 6 times"}'
    )
