"""The lease that fences a deploy job: a job whose deployment was taken over by
another (a restarted worker resuming it) can change nothing any more."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor import repository
from shared.models import Deployment
from shared.settings import GatewaySettings
from tests.integration.conftest import SAMPLE_APP, create_api, signup, upload, zip_bytes


@pytest.fixture
def settings(gateway_settings: GatewaySettings) -> GatewaySettings:
    return gateway_settings  # the sessions fixture's database: the gateway's


async def queued_deployment(gateway: httpx.AsyncClient) -> str:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    assert (await upload(gateway, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP}))).is_success
    answer = await gateway.post(f"/api/v1/apis/{api['id']}/deploy", headers=alice)
    return str(answer.json()["deployment_id"])


async def test_a_job_that_lost_its_lease_changes_nothing(
    gateway: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    deployment_id = await queued_deployment(gateway)
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
    deployment_id = await queued_deployment(gateway)
    async with sessions() as session:
        await repository.mark_failed(session, deployment_id, "gone", None)
        await session.commit()
        assert await repository.take_lease(session, deployment_id) is None
