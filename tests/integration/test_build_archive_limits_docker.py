"""The executor unpacks an upload under the platform's configured archive limits,
the same ones the gateway accepted it under (not the library defaults)."""

from __future__ import annotations

import httpx
import pytest

from executor.deploy import Deployer
from tests.integration.conftest import SAMPLE_APP, create_api, deploy_and_wait, signup, zip_bytes

pytestmark = pytest.mark.docker


async def test_the_executor_unpacks_under_the_configured_archive_limits(
    gateway: httpx.AsyncClient, deployer: Deployer
) -> None:
    # The gateway accepts 11 entries (its own settings); the executor is configured
    # for 5. Unpacked with the defaults (2,000), this would build and run.
    deployer.settings = deployer.settings.model_copy(update={"max_archive_files": 5})
    headers = await signup(gateway)
    api = await create_api(gateway, headers, "Many Files")
    files = {"main.py": SAMPLE_APP, **{f"data/{i}.txt": b"x" for i in range(10)}}
    status = await deploy_and_wait(gateway, deployer, headers, api["id"], zip_bytes(files))
    assert status["status"] == "failed", status
    assert "more than 5 entries" in status["error"], status
