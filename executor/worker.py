"""The build worker: `python -m executor.worker` consumes the deploy queue with rq."""

from __future__ import annotations

import logging
import sys

from redis import Redis
from rq import Queue, Worker

from executor.deploy import labels_for_platform
from executor.docker_adapter import DockerAdapter
from shared.errors import VeilError
from shared.logging import configure_logging
from shared.settings import ExecutorSettings

log = logging.getLogger("veil.executor.worker")


def main() -> int:
    settings = ExecutorSettings()
    configure_logging(settings.log_level, "executor-worker")
    try:
        docker = DockerAdapter.from_env()
        docker.ensure_network(settings.function_network, labels_for_platform(settings))
        if not docker.image_exists(settings.python_base_image):
            log.error(
                "runtime base image %s is missing: run `bash runtimes/base_images.sh`",
                settings.python_base_image,
            )
        docker.close()
    except VeilError as exc:
        log.error("%s", exc.message)
        return 1
    redis = Redis.from_url(settings.redis_url)
    worker = Worker([Queue(settings.build_queue, connection=redis)], connection=redis)
    log.info("build worker listening on queue %s", settings.build_queue)
    worker.work(logging_level=settings.log_level.upper())
    return 0


if __name__ == "__main__":
    sys.exit(main())
