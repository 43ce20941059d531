"""Hands deployments to the executor's rq queue.

The gateway enqueues by function path, so it never imports executor code.
"""

from __future__ import annotations

import asyncio

from redis import Redis as SyncRedis
from redis.exceptions import RedisError
from rq import Queue

from shared.errors import ServiceUnavailable

DEPLOY_JOB = "executor.jobs.deploy"
STOP_JOB = "executor.jobs.stop_api"
TEARDOWN_JOB = "executor.jobs.teardown_api"


class BuildQueue:
    def __init__(self, redis_url: str, queue_name: str) -> None:
        self._redis = SyncRedis.from_url(redis_url)
        self._queue = Queue(queue_name, connection=self._redis)

    async def enqueue(self, job: str, *args: str, job_id: str | None = None) -> None:
        try:
            await asyncio.to_thread(
                self._queue.enqueue,
                job,
                *args,
                job_id=job_id,
                job_timeout=3600,
                result_ttl=3600,
                failure_ttl=7 * 24 * 3600,
            )
        except RedisError as exc:
            raise ServiceUnavailable(
                "The build queue is unavailable; try again shortly.", code="queue_unavailable"
            ) from exc

    def close(self) -> None:
        self._redis.close()
