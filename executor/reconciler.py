"""Converges Docker to the database: what should run runs, nothing else does.

One pass:
1. Orphans: a Veil container whose deployment is unknown, failed, stopped,
   superseded or crash-looping is removed. Containers of deployments still in
   progress belong to their deploy job and are left alone.
2. The API's active deployment must have a running container. When it died
   (crash, OOM kill) or vanished, it is started again with exponential
   backoff; after `max_restarts` of the app's own failures the deployment is
   marked crash-looping and taken off the data plane. A container the engine
   stopped when it went down (dockerd restart, host reboot) or that was stopped,
   killed or removed from outside is restarted at once and not counted; a count
   is forgiven after `restart_reset_seconds` of running.
3. Build sandboxes left by a dead build (a killed worker): all of them at the
   build worker's start, and any older than the build time limit later.
4. At worker start only: deploys that were interrupted (the executor died
   mid-deploy) are queued again. Container names are deterministic, so the
   resumed job replaces its own leftovers instead of adding a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NoReturn

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor import repository
from executor.deploy import Deployer, DeployFailed, labels_for_platform, prepare_networks
from executor.docker_adapter import ManagedContainer, stopped_from_outside
from shared.errors import VeilError
from shared.invalidation import invalidate, route
from shared.models import Api, ApiVersion, Deployment
from shared.models.base import utcnow
from shared.models.deployment import FINISHED_STATUSES
from shared.periodic import every

log = logging.getLogger("veil.executor.reconciler")
RETRY_SECONDS = 1.0


@dataclass
class ReconcileReport:
    removed_orphans: list[str] = field(default_factory=list)  # container ids
    restarted: list[str] = field(default_factory=list)  # deployment ids
    crash_looping: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)

    def changed(self) -> bool:
        return any((self.removed_orphans, self.restarted, self.crash_looping, self.resumed))


def describe_exit(container: ManagedContainer | None) -> str:
    if container is None:
        return "container missing"
    if container.state.oom_killed:
        return "oom-killed"
    return f"exit {container.state.exit_code}"


class Reconciler:
    def __init__(
        self,
        deployer: Deployer,
        sessions: async_sessionmaker[AsyncSession],
        requeue: Callable[[str], None] | None = None,
    ) -> None:
        self.deployer = deployer
        self.settings = deployer.settings
        self.docker = deployer.docker
        self.sessions = sessions
        self.requeue = requeue

    async def run_once(self, resume_interrupted: bool = False) -> ReconcileReport:
        report = ReconcileReport()
        self._engine_started_at = await asyncio.to_thread(self.docker.engine_started_at)
        containers = await asyncio.to_thread(
            self.docker.managed_containers, labels_for_platform(self.settings)
        )
        by_deployment: dict[str, ManagedContainer] = {}
        for container in containers:
            deployment_id = container.labels.get("veil.deployment_id")
            if deployment_id:
                by_deployment[deployment_id] = container
            elif container.labels.get("veil.role") == "build" and self._stale_build(
                container, resume_interrupted
            ):
                await asyncio.to_thread(self.docker.remove_container, container.id, 0)
                report.removed_orphans.append(container.id)
        async with self.sessions() as session:
            known = await repository.deployments_by_ids(session, list(by_deployment))
            for deployment_id, container in by_deployment.items():
                deployment = known.get(deployment_id)
                if deployment is None or (
                    deployment.status in FINISHED_STATUSES and not self._draining(deployment)
                ):
                    await asyncio.to_thread(self.docker.remove_container, container.id, 2)
                    report.removed_orphans.append(container.id)
            for deployment, version, api in await repository.running_active(session):
                await self._keep_running(
                    session, deployment, version, api, by_deployment.get(deployment.id), report
                )
            if resume_interrupted and self.requeue is not None:
                for deployment in await repository.in_progress(session):
                    self.requeue(deployment.id)
                    report.resumed.append(deployment.id)
        if report.changed():
            log.info("reconciled: %s", report)
        return report

    def _draining(self, deployment: Deployment) -> bool:
        """A just-superseded container is still finishing calls; its deploy job removes it."""
        if deployment.status != "superseded" or deployment.finished_at is None:
            return False
        grace = timedelta(seconds=self.settings.drain_seconds + 30)
        return utcnow() - deployment.finished_at < grace

    async def _keep_running(
        self,
        session: AsyncSession,
        deployment: Deployment,
        version: ApiVersion,
        api: Api,
        container: ManagedContainer | None,
        report: ReconcileReport,
    ) -> None:
        s = self.settings
        if container is not None and container.state.running:
            if self._forgive(deployment):
                await session.commit()
            return
        # Only the app's own failures count towards crash-looping: not an engine
        # restart or a host reboot, not a stop or kill from outside, not a
        # container someone removed. Those are restarted at once, uncounted.
        app_failed = container is not None and not stopped_from_outside(
            container.state, self._engine_started_at
        )
        if container is not None:
            deployment.last_exit = describe_exit(container)
            deployment.last_exit_at = container.state.finished_at or utcnow()
        elif deployment.last_exit is None:
            deployment.last_exit = describe_exit(container)
            deployment.last_exit_at = utcnow()
        # else: a container removed after a failed restart tells nothing; the exit
        # seen before (its code, an OOM kill) stays the last one, not "missing".
        if app_failed and deployment.restart_count >= s.max_restarts:
            deployment.status = "crash-looping"
            deployment.error = (
                f"crash-looping: the container died {deployment.restart_count + 1} times;"
                f" last: {deployment.last_exit}"
            )
            deployment.endpoint = None
            deployment.finished_at = utcnow()
            await repository.clear_route(session, api.id)
            await session.commit()
            if container is not None:
                await asyncio.to_thread(self.docker.remove_container, container.id, 1)
            report.crash_looping.append(deployment.id)
            return
        backoff = min(s.restart_backoff_seconds * 2**deployment.restart_count, 300.0)
        last = deployment.last_restart_at
        if app_failed and last is not None and utcnow() - last < timedelta(seconds=backoff):
            await session.commit()  # keep last_exit; try again on a later pass
            return
        if app_failed:
            deployment.restart_count += 1
        deployment.last_restart_at = utcnow()
        sealed = await repository.api_secrets(session, api.id)
        try:
            container_id = await asyncio.to_thread(
                self._restart, deployment, version, api, container, sealed
            )
            endpoint = await asyncio.to_thread(self.deployer.await_ready, container_id)
        except (DeployFailed, VeilError) as exc:
            log.warning("restart of deployment %s failed: %s", deployment.id, exc)
            if not app_failed and isinstance(exc, DeployFailed):
                deployment.restart_count += 1  # it was up to the app, and it did not start
            await session.commit()  # the count went up: the next pass backs off further
            return
        deployment.container_id = container_id
        deployment.endpoint = endpoint  # the address may change with a new container
        invalidate(session, route(api.slug))
        await session.commit()
        report.restarted.append(deployment.id)

    def _stale_build(self, sandbox: ManagedContainer, at_worker_start: bool) -> bool:
        """A build sandbox nobody works in: at the build worker's start every one (its
        builds died with the last worker and are resumed from scratch), later those
        older than any build may run."""
        if at_worker_start:
            return True
        oldest = utcnow() - timedelta(seconds=self.settings.build_timeout_seconds + 120)
        return sandbox.created_at is not None and sandbox.created_at < oldest

    def _forgive(self, deployment: Deployment) -> bool:
        """A restart count is forgiven once the app has run that long since (True: it was)."""
        last = deployment.last_restart_at
        healthy_for = timedelta(seconds=self.settings.restart_reset_seconds)
        if deployment.restart_count and last is not None and utcnow() - last >= healthy_for:
            deployment.restart_count = 0
            return True
        return False

    def _restart(
        self,
        deployment: Deployment,
        version: ApiVersion,
        api: Api,
        container: ManagedContainer | None,
        sealed_secrets: dict[str, str],
    ) -> str:
        if container is not None:
            # The stopped container keeps the environment it was created with.
            self.docker.start_existing(container.id)
            return container.id
        return self.deployer.start_container(deployment, version, api, sealed_secrets)


async def reconcile_forever(reconciler: Reconciler, interval: float) -> NoReturn:
    """A pass every `interval` seconds, and at once when one of Veil's containers dies
    or the engine's event stream breaks (a dockerd restart); after a failed pass (the
    engine still down, the database away) the next comes a second later, so APIs are
    back about a second after the engine answers again."""
    labels = labels_for_platform(reconciler.settings)
    soon = min(interval, RETRY_SECONDS)
    restarted = False

    async def reconcile_pass() -> None:
        nonlocal restarted
        restarted = False
        # Networks and firewall rules too: lost to a reboot, a dockerd restart
        # or a recreated network, they come back within one interval.
        await asyncio.to_thread(prepare_networks, reconciler.docker, reconciler.settings)
        restarted = bool((await reconciler.run_once()).restarted)

    async def until_change(within: float) -> None:
        if restarted:  # look again soon: more may be on their way back
            await asyncio.sleep(soon)
            return
        await asyncio.to_thread(reconciler.docker.wait_for_change, labels, within)
        await asyncio.sleep(0.2)  # let a burst of deaths (an engine going down) land

    await every(
        interval, reconcile_pass, "reconcile pass", log=log, retry_seconds=soon, wake=until_change
    )
