"""The build worker: `python -m executor.worker` consumes the deploy queue with rq.

Before it takes jobs it reconciles once, resuming deploys that an earlier
worker left half-done (this assumes one build worker per Docker host).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from typing import Any

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job

from executor.deploy import Deployer, prepare_networks
from executor.docker_adapter import DockerAdapter
from executor.reconciler import Reconciler
from runtimes.registry import RUNTIMES
from shared.db import create_engine, create_sessionmaker
from shared.errors import VeilError
from shared.logging import configure_logging
from shared.settings import ExecutorSettings

log = logging.getLogger("veil.executor.worker")
DEPLOY_JOB = "executor.jobs.deploy"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class BuildWorker(Worker):
    """rq's worker, whose work horse (a forked child in a process group of its own)
    dies with it: a `kill -9` of the worker must not leave a horse building on
    while a restarted worker resumes the same deployment."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._worker_pid = os.getpid()

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != self._worker_pid:  # the worker died before the line above
            os._exit(1)
        super().main_work_horse(job, queue)


def requeue_deploy(queue: Queue, deployment_id: str) -> None:
    job_id = f"deploy-{deployment_id}"
    try:
        if Job.fetch(job_id, connection=queue.connection).get_status() == "queued":
            return  # still waiting its turn: nothing was interrupted
    except NoSuchJobError:
        pass
    log.info("resuming interrupted deployment %s", deployment_id)
    queue.enqueue(DEPLOY_JOB, deployment_id, job_id=job_id, job_timeout=3600)


async def reconcile_at_start(settings: ExecutorSettings, redis: Redis, queue: Queue) -> None:
    engine = create_engine(settings.resolved_database_url, settings.database_timeouts)
    docker = DockerAdapter.from_env()
    try:
        sessions = create_sessionmaker(engine)
        deployer = Deployer(settings, sessions, docker, redis)
        reconciler = Reconciler(deployer, sessions, lambda d: requeue_deploy(queue, d))
        await reconciler.run_once(resume_interrupted=True)
    finally:
        docker.close()
        await engine.dispose()


def main() -> int:
    settings = ExecutorSettings()
    configure_logging(settings.log_level, "executor-worker")
    redis = Redis.from_url(settings.redis_url)
    queue = Queue(settings.build_queue, connection=redis)
    try:
        docker = DockerAdapter.from_env()
        prepare_networks(docker, settings)
        for runtime in RUNTIMES.values():
            if not docker.image_exists(runtime.base_image(settings)):
                log.error(
                    "%s base image %s is missing: run `bash runtimes/base_images.sh %s`",
                    runtime.name,
                    runtime.base_image(settings),
                    runtime.name,
                )
        docker.close()
        asyncio.run(reconcile_at_start(settings, redis, queue))
    except VeilError as exc:
        log.error("%s", exc.message)
        return 1
    worker = BuildWorker([queue], connection=redis)
    log.info("build worker listening on queue %s", settings.build_queue)
    worker.work(logging_level=settings.log_level.upper())
    return 0


if __name__ == "__main__":
    sys.exit(main())
