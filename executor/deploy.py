"""One deployment, start to finish: build → start → wait until it answers → switch the route.

Status moves queued → building → starting → running, or to failed with the
reason and the tail of the relevant log. The previous container keeps serving
until the new one answers; then the route switches in one UPDATE and the old
container drains and stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from redis import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor import egress, failpoints, repository
from executor.build_context import prepare_context
from executor.build_feed import BuildFeed
from executor.dependencies import install_dependencies
from executor.docker_adapter import PLATFORM_LABEL, ContainerSpec, DockerAdapter
from executor.readiness import wait_until_ready
from runtimes.registry import runtime_spec
from shared.blobs import BlobStore
from shared.crypto import SecretBox, gateway_secret
from shared.errors import VeilError
from shared.invalidation import SyncPublisher, publish_on_commit
from shared.models import Api, ApiVersion, Deployment
from shared.models.base import utcnow
from shared.models.deployment import IN_PROGRESS_STATUSES
from shared.settings import ExecutorSettings

log = logging.getLogger("veil.executor.deploy")


class DeployFailed(Exception):
    def __init__(self, reason: str, log_tail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


def image_repository(api: Api) -> str:
    return f"veil-fn/{api.id}"


def image_tag(api: Api, version: ApiVersion) -> str:
    # The tag is what says which version an image holds (no per-version label: see
    # runtimes/registry.py IMAGE_LABEL_ARGS).
    return f"{image_repository(api)}:v{version.number}"


def container_name(settings: ExecutorSettings, deployment_id: str, kind: str = "fn") -> str:
    """The container's name: deterministic, so a retried job finds (and replaces) its own
    container instead of adding one; and opaque, because Docker's DNS answers every
    container's name (and reverse-resolves its address) on its network: a name that
    held the deployment id would tell other tenants' code what runs beside it."""
    key = settings.secrets_key.get_secret_value().encode()
    digest = hmac.new(key, f"{kind}:{deployment_id}".encode(), hashlib.sha256).hexdigest()
    return f"veil-{kind}-{digest[:24]}"


def labels_for_platform(settings: ExecutorSettings) -> dict[str, str]:
    return {PLATFORM_LABEL: "veil", "veil.instance": settings.instance_label}


def prepare_networks(docker: DockerAdapter, settings: ExecutorSettings) -> None:
    """The functions' network and the build sandboxes' (unless builds get none), and
    the egress policy on both (executor/egress.py); idempotent."""
    docker.ensure_network(settings.function_network, labels_for_platform(settings))
    if settings.build_network != "none":
        docker.ensure_network(settings.build_network, labels_for_platform(settings))
    plan = egress.plan_for(settings, docker)
    if plan is None:
        log.warning("VEIL_EGRESS_POLICY=off: tenant egress is not restricted on this host")
        return
    egress.apply(plan)


def labels_for(
    settings: ExecutorSettings, api: Api, deployment: Deployment | None
) -> dict[str, str]:
    labels = labels_for_platform(settings) | {
        "veil.api_id": api.id,
        "veil.api_slug": api.slug,
    }
    if deployment is not None:
        labels["veil.deployment_id"] = deployment.id
    return labels


class Deployer:
    def __init__(
        self,
        settings: ExecutorSettings,
        sessions: async_sessionmaker[AsyncSession],
        docker: DockerAdapter,
        redis: Redis,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.docker = docker
        self.redis = redis
        # Route changes its sessions commit reach the data plane from the commit.
        publish_on_commit(sessions, SyncPublisher(redis))
        self.blobs = BlobStore(settings.data_dir / "blobs")
        self._boosted: dict[str, float] = {}  # container id → CPUs once it is ready

    async def run(self, deployment_id: str) -> None:
        async with self.sessions() as session:
            loaded = await repository.load_deployment(session, deployment_id)
            if loaded is None:
                log.warning("deployment %s vanished before it ran", deployment_id)
                return
            deployment, version, api = loaded
            if deployment.status not in IN_PROGRESS_STATUSES:
                log.info(
                    "deployment %s is %s already; nothing to do", deployment_id, deployment.status
                )
                return
            lease = await repository.take_lease(session, deployment_id)
            if lease is None:
                return  # finished or cancelled meanwhile
            self._lease = lease
            self.feed = BuildFeed(self.redis, deployment_id)
            try:
                await self._deploy(session, deployment, version, api)
            except repository.LeaseLost:
                # Another job resumed it: this one stops here, having changed nothing
                # since; what it left in the engine the other one replaces by name.
                await session.rollback()
                log.warning("deployment %s was taken over by another job; stopping", deployment_id)
            except DeployFailed as exc:
                await self._fail(session, deployment_id, exc.reason, exc.log_tail)
            except VeilError as exc:
                await self._fail(session, deployment_id, exc.message, "")
            except Exception as exc:
                log.exception("deployment %s crashed", deployment_id)
                await self._fail(session, deployment_id, f"internal error: {exc}", "")
            else:
                self.feed.end("running")

    async def _deploy(
        self, session: AsyncSession, deployment: Deployment, version: ApiVersion, api: Api
    ) -> None:
        deployment.status = "building"
        deployment.started_at = utcnow()
        await self._commit(session, deployment.id)
        self.feed.status("building")

        started = time.monotonic()
        # Docker's calls block: in a thread each, so that the loop stays free.
        image_id = await asyncio.to_thread(self._image, deployment, version, api)
        deployment.image_id = image_id
        deployment.status = "starting"
        await self._commit(session, deployment.id)
        self.feed.status("starting")
        log.info("deployment %s built in %.2f s", deployment.id, time.monotonic() - started)

        # Read at start, not at load: a secret set during the build is in.
        sealed = await repository.api_secrets(session, api.id)
        container_id = await asyncio.to_thread(
            self.start_container, deployment, version, api, sealed
        )
        # Fault tests only (it sleeps there).
        await asyncio.to_thread(failpoints.reached, "container-started", self.settings.data_dir)
        deployment.container_id = container_id
        deployment.container_name = container_name(self.settings, deployment.id)
        await self._commit(session, deployment.id)

        deployment.endpoint = await asyncio.to_thread(self.await_ready, container_id)
        deployment.status = "running"
        deployment.ready_at = utcnow()
        previous_id = await repository.switch_route(session, api.id, deployment.id)
        previous = await session.get(Deployment, previous_id) if previous_id else None
        if previous is not None and previous.id != deployment.id:
            previous.status = "superseded"
            previous.finished_at = utcnow()
        await self._commit(session, deployment.id)
        log.info("deployment %s is serving at %s", deployment.id, deployment.endpoint)

        if previous is not None and previous.container_id and previous.id != deployment.id:
            # In-flight calls on the old container get a moment to finish.
            await asyncio.sleep(self.settings.drain_seconds)
            await asyncio.to_thread(
                self.docker.remove_container, previous.container_id, stop_timeout=5
            )
        await asyncio.to_thread(self._prune_images, api, keep_version=version.number)

    def _image(self, deployment: Deployment, version: ApiVersion, api: Api) -> str:
        """The version's image: the one it has already, or a new build (blocking: Docker).

        The build's output goes to the live feed, its log file and, the tail of it,
        to the failure's reason."""
        build_log: deque[str] = deque(maxlen=self.settings.log_tail_lines)
        log_path = self.settings.data_dir / "logs" / "builds" / f"{deployment.id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w", encoding="utf-8") as log_file:

            def on_log(line: str) -> None:
                build_log.append(line)
                self.feed.line(line)
                log_file.write(line + "\n")
                log_file.flush()

            tag = image_tag(api, version)
            if self.docker.image_exists(tag):
                # Versions are immutable, so their image is too: a rollback or a
                # redeploy of a kept version starts at once, without a build.
                on_log(f"Reusing the image of version {version.number} ({tag}).")
                return tag
            return self._build(deployment, version, api, on_log, build_log)

    def _prune_images(self, api: Api, keep_version: int) -> None:
        """Keep the images of the newest `keep_images` versions (for rollback), drop older ones.

        By tag: two versions with the same code share one image, which goes only
        with its last tag.
        """
        tags = self.docker.tags_by_version(
            labels_for(self.settings, api, None), image_repository(api)
        )
        newest = sorted(tags, reverse=True)[: self.settings.keep_images]
        for number, tag in tags.items():
            if number not in newest and number != keep_version:
                self.docker.remove_image(tag)

    def await_ready(self, container_id: str) -> str:
        """Wait until the container answers HTTP and return its endpoint.

        A container that exits or never answers is removed, and DeployFailed
        carries the reason and the tail of its output.
        """
        host = self.docker.ip_address(container_id, self.settings.function_network)
        port = self.settings.container_port
        not_ready = wait_until_ready(
            self.docker, container_id, host, port, self.settings.start_timeout_seconds
        )
        if not_ready is not None:
            tail = self.docker.logs(container_id, self.settings.log_tail_lines)
            self.docker.remove_container(container_id, stop_timeout=1)
            raise DeployFailed(f"start failed: {not_ready.reason}", tail)
        cpus = self._boosted.pop(container_id, None)
        if cpus is not None:
            self.docker.set_cpus(container_id, cpus)
        return f"http://{host}:{port}"

    def start_container(
        self,
        deployment: Deployment,
        version: ApiVersion,
        api: Api,
        sealed_secrets: Mapping[str, str],
    ) -> str:
        """Run the deployment's image under its deterministic name; return the container id.

        `sealed_secrets` is the API's secrets as name → ciphertext
        (`repository.api_secrets`); they are decrypted only into the container spec.
        """
        name = container_name(self.settings, deployment.id)
        self.docker.remove_container(name, stop_timeout=1)  # a retried job's leftover
        spec = self._container_spec(deployment, version, api, name, sealed_secrets)
        boost = self.settings.startup_cpu_boost
        if boost <= spec.cpus:
            return self.docker.run(spec)
        # Start-up CPU boost (as Cloud Run does): interpreters boot CPU-bound, and a
        # small CPU quota visibly slows a Node start (docs/benchmarks.md). await_ready() puts
        # the API's own limit back as soon as the app answers (or removes it).
        container_id = self.docker.run(dataclasses.replace(spec, cpus=boost))
        self._boosted[container_id] = spec.cpus
        return container_id

    def _build(
        self,
        deployment: Deployment,
        version: ApiVersion,
        api: Api,
        on_log: Callable[[str], None],
        build_log: deque[str],
    ) -> str:
        s = self.settings
        deadline = time.monotonic() + s.build_timeout_seconds
        builds_dir = s.data_dir / "builds"
        builds_dir.mkdir(parents=True, exist_ok=True)
        context_dir = Path(tempfile.mkdtemp(dir=builds_dir, prefix=f"{deployment.id}-"))
        try:
            prepare_context(
                context_dir,
                self.blobs.open_path(version.sha256),
                version.filename,
                version.runtime,
                s.build_ca_bundle,
                s.archive_limits,
            )
            labels = labels_for(s, api, None)
            runtime = runtime_spec(version.runtime)
            try:
                # Tenant code (installs, the compile) runs in the sandbox; the
                # image build after it only copies files.
                install_dependencies(
                    self.docker,
                    s,
                    version.runtime,
                    context_dir,
                    contract=version.contract,
                    entry=version.entry,
                    name=container_name(s, deployment.id, "build"),
                    labels=labels,
                    deadline=deadline,
                    on_log=on_log,
                )
                return self.docker.build(
                    context_dir,
                    image_tag(api, version),
                    buildargs=runtime.buildargs(s, labels),
                    memory_mb=s.build_memory_limit_mb,
                    timeout_seconds=max(deadline - time.monotonic(), 1.0),
                    on_log=on_log,
                )
            except VeilError as exc:
                raise DeployFailed(f"build failed: {exc.message}", "\n".join(build_log)) from exc
        finally:
            shutil.rmtree(context_dir, ignore_errors=True)

    def _container_spec(
        self,
        deployment: Deployment,
        version: ApiVersion,
        api: Api,
        name: str,
        sealed_secrets: Mapping[str, str],
    ) -> ContainerSpec:
        s = self.settings
        # A value that does not decrypt fails the start (SecretDecryptionError names
        # the secret, never a value) rather than run the API without it.
        box = SecretBox(s.secrets_key.get_secret_value())
        secrets = {n: box.decrypt(api.id, n, blob) for n, blob in sealed_secrets.items()}
        return ContainerSpec(
            image=deployment.image_id or image_tag(api, version),
            name=name,
            command=runtime_spec(version.runtime).command(version.contract, version.entry),
            labels=labels_for(s, api, deployment),
            network=s.function_network,
            # The API's own variables, then its secrets (a secret wins over a plain
            # variable of the same name); the platform's PORT always wins.
            env={
                **(api.env or {}),
                **secrets,
                "PORT": str(s.container_port),
                # What the data plane sends as X-Veil-Gateway-Secret: lets the app
                # refuse calls that did not come through the gateway.
                "VEIL_GATEWAY_SECRET": gateway_secret(s.secrets_key.get_secret_value(), api.id),
            },
            memory_mb=api.memory_mb or s.memory_limit_mb,
            cpus=api.cpus or s.cpu_limit,
            pids_limit=s.pids_limit,
            nofile=s.nofile_limit,
            tmpfs_mb=s.tmpfs_size_mb,
        )

    async def _commit(self, session: AsyncSession, deployment_id: str) -> None:
        """Commit this job's changes only while it holds the deployment's lease
        (every state change is compare-and-set on it): repository.LeaseLost if not."""
        await repository.hold_lease(session, deployment_id, self._lease)
        await session.commit()

    async def _fail(
        self, session: AsyncSession, deployment_id: str, reason: str, log_tail: str
    ) -> None:
        await session.rollback()
        try:
            await repository.hold_lease(session, deployment_id, self._lease)
        except repository.LeaseLost:
            await session.rollback()
            log.warning("deployment %s: a job that lost it failed: %s", deployment_id, reason)
            return
        await repository.mark_failed(session, deployment_id, reason, log_tail or None, self._lease)
        await session.commit()
        self.feed.end("failed", reason)
        log.warning("deployment %s failed: %s", deployment_id, reason)
