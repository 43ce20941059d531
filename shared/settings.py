"""Settings shared by every Veil service, read from the environment (prefix VEIL_).

Each service has its own class deriving from `CommonSettings`; instances are
created at startup and handed to the app factory, never read at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.archive import ArchiveLimits
from shared.db import DatabaseTimeouts


class CommonSettings(BaseSettings):
    # hide_input_in_errors: a validation error must not print the secrets below.
    model_config = SettingsConfigDict(env_prefix="VEIL_", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Path("data")
    database_url: str = ""  # empty → SQLite file under data_dir
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Secrets have no defaults on purpose: `make run` generates them once into
    # data/secrets.env so that a forgotten setting never means a known key.
    jwt_secret: SecretStr
    service_token: SecretStr
    # Encrypts per-API secrets at rest (shared/crypto.py); losing it loses them.
    secrets_key: SecretStr = Field(min_length=16)
    executor_url: str = "http://127.0.0.1:8081"
    analytics_url: str = "http://127.0.0.1:8082"
    log_level: str = "INFO"
    # The header a trusted load balancer puts the caller's address in (e.g.
    # "x-forwarded-for"); empty: the socket's peer. Throttles key on it.
    client_address_header: str = ""
    # Each API on its own host name, <slug>.<api_domain> (its own browser origin,
    # apart from the dashboard's and every other tenant's): e.g. "apis.example.com"
    # (best on the Public Suffix List, so no tenant can set cookies for its
    # siblings) or "localhost" on one machine (browsers resolve *.localhost to
    # loopback). Empty: only the path form <gateway>/<slug>/.
    api_domain: str = ""
    # Bounded waits on the database (shared/db.py): past them a call answers 503
    # database_unavailable at once instead of hanging.
    db_connect_timeout_seconds: float = 5.0
    db_statement_timeout_seconds: float = 30.0
    db_pool_timeout_seconds: float = 5.0
    # What an upload may unpack to: checked by the gateway on upload and again by
    # the executor when it unpacks the same upload for a build.
    # The largest answer the data plane relays for any API (per API it may be less);
    # the gateway's ceiling for the per-API setting, the data plane's default.
    max_response_mb: int = 100
    max_archive_files: int = 2000
    max_archive_bytes: int = 200 * 1024 * 1024

    @property
    def database_timeouts(self) -> DatabaseTimeouts:
        return DatabaseTimeouts(
            connect_seconds=self.db_connect_timeout_seconds,
            statement_seconds=self.db_statement_timeout_seconds,
            pool_seconds=self.db_pool_timeout_seconds,
        )

    @property
    def archive_limits(self) -> ArchiveLimits:
        return ArchiveLimits(
            max_files=self.max_archive_files, max_total_bytes=self.max_archive_bytes
        )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'veil.db').resolve()}"


class GatewaySettings(CommonSettings):
    access_token_ttl_seconds: int = 15 * 60
    bcrypt_rounds: int = 12
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    max_upload_bytes: int = 50 * 1024 * 1024
    build_queue: str = "veil-builds"
    public_gateway_url: str = "http://localhost:8000"

    @property
    def public_api_url(self) -> str:
        """Where callers reach an API, with `{slug}` for its slug: on its own host
        name when an API domain is set, else the path form."""
        base = urlsplit(self.public_gateway_url.rstrip("/"))
        if not self.api_domain:
            return f"{base.geturl()}/{{slug}}/"
        port = f":{base.port}" if base.port else ""
        return f"{base.scheme}://{{slug}}.{self.api_domain}{port}/"

    # Admin-set ceilings for what a developer may ask for per API.
    max_memory_limit_mb: int = 1024
    max_cpu_limit: float = 2.0
    max_timeout_seconds: float = 300.0
    max_concurrency_limit: int = 1000
    # Failed sign-ins (gateway/auth/throttle.py): free ones per account and per
    # address within the window, then locks doubling from the base to the maximum.
    login_free_failures_per_account: int = 5
    login_free_failures_per_address: int = 20
    login_failure_window_seconds: int = 900
    login_backoff_base_seconds: float = 1.0
    login_backoff_max_seconds: float = 900.0


class DataPlaneSettings(CommonSettings):
    upstream_timeout_seconds: float = 30.0
    # The path form, <gateway>/<slug>/, beside host names under api_domain: every
    # API then shares one origin (see docs/security.md); off where Veil is
    # reachable beyond loopback.
    path_routing: bool = True
    route_cache_ttl_seconds: float = 5.0
    # Worker processes serving the data plane; per-API concurrency limits are
    # shared out between them (each admits ceil(limit / workers) at once).
    dataplane_workers: int = 1
    key_cache_ttl_seconds: float = 60.0  # revocations arrive by pub/sub at once anyway
    max_request_body_bytes: int = 10 * 1024 * 1024
    # Invalid API keys per client address and minute (per worker) before keys that
    # are not cached are refused without a lookup (gateway/dataplane/failures.py).
    failed_keys_per_minute: int = 60
    # When Redis cannot be asked: admit calls unmetered (true) or refuse them with 503.
    rate_limit_fail_open: bool = True
    events_stream: str = "veil:executions"
    events_stream_maxlen: int = 1_000_000


class ExecutorSettings(CommonSettings):
    build_queue: str = "veil-builds"
    python_base_image: str = "veil/python-base:bookworm"
    node_base_image: str = "veil/node-base:bookworm"
    go_base_image: str = "veil/go-base:bookworm"
    # GOPROXY for Go builds; "off" = standard library and vendor/ only (no proxy
    # is reachable here). E.g. "https://proxy.golang.org,direct" where one is.
    go_proxy: str = "off"
    build_ca_bundle: Path | None = Path("/etc/ssl/certs/ca-certificates.crt")
    function_network: str = "veil-functions"
    # Label put on every container and image Veil creates; tests set their own
    # value so that they can find and remove exactly what they started.
    instance_label: str = "default"
    container_port: int = 8080
    memory_limit_mb: int = 256
    cpu_limit: float = 0.5
    pids_limit: int = 128
    nofile_limit: int = 1024
    tmpfs_size_mb: int = 64
    start_timeout_seconds: float = 30.0
    # CPUs a container may use until it first answers (0: no boost); then its own limit.
    startup_cpu_boost: float = 2.0
    # Builds: steps that can run tenant code (dependency installs, the Go compile)
    # run in a build sandbox (executor/docker_sandbox.py) with these limits. The
    # disk limit is the size of each writable path there (tmpfs: it is RAM, and
    # counted in the sandbox's memory on top of build_memory_limit_mb).
    build_timeout_seconds: float = 600.0
    build_memory_limit_mb: int = 1024
    build_disk_limit_mb: int = 1024
    build_cpu_limit: float = 1.0
    build_pids_limit: int = 512
    # The network build sandboxes join (egress policy as for functions); "none":
    # no network at all (dependencies must then be vendored).
    build_network: str = "veil-builds"
    # Build sandboxes reach the network only through the build proxy
    # (executor/build_proxy.py, on the build network's gateway), which tunnels
    # HTTPS to these hosts only (plus the host of go_proxy).
    build_proxy_port: int = 3128
    build_allowed_hosts: list[str] = Field(
        default=[
            "pypi.org",
            "files.pythonhosted.org",
            "registry.npmjs.org",
            "proxy.golang.org",
            "sum.golang.org",
        ]
    )
    # Tenant egress (executor/egress.py), for functions: "public" (the internet,
    # never private, link-local, CGNAT, loopback or this host's own networks),
    # "none" (nothing but the DNS resolvers), or "off" (not managed: unsafe,
    # for hosts whose firewall someone else runs). Builds always get only the proxy.
    egress_policy: Literal["public", "none", "off"] = "public"
    # Exceptions, for functions and builds alike: "10.1.2.3", "10.1.0.0/16" or
    # "10.1.2.3:5432" (TCP port), e.g. a database tenants are meant to use.
    egress_allow: list[str] = Field(default=[])
    # Dependency installs kept for reuse (same manifests, same base image), newest first.
    deps_cache_max_mb: int = 4096
    drain_seconds: float = 2.0
    log_tail_lines: int = 50
    # The containers' reconciler (executor/reconciler.py); not analytics' count
    # reconciliation, which has reconcile_interval_seconds of its own.
    container_reconcile_interval_seconds: float = 10.0
    max_restarts: int = 5
    keep_images: int = 5  # per API: the newest versions' images stay for instant rollback
    restart_backoff_seconds: float = 1.0  # doubles with each restart, up to 5 minutes
    # After this long running since its last restart, an app's restart count is
    # forgiven (as Kubernetes resets its crash back-off).
    restart_reset_seconds: float = 600.0


class AnalyticsSettings(CommonSettings):
    events_stream: str = "veil:executions"
    consumer_group: str = "analytics"
    consumer_name: str = Field(default="analytics-1")
    # Most entries read (and stored in one transaction) at once: a busy stream gives
    # big batches, whose rollup rows are few per event; a quiet one gives small ones.
    # A full batch holds about 3 KB per entry in memory, twice over (one read while
    # the one before is stored).
    batch_size: int = 25_000
    block_ms: int = 200  # longest wait per stream read: bounds how stale stats can be
    # After a read short of a full batch, the next waits until this long after it
    # started (0: reads at once): the events gather in the stream meanwhile and are
    # stored in one batch, not in many small ones that each pay a store's overhead.
    # Bounds how stale stats can be, too (with a store, well within a second).
    ingest_min_interval_ms: int = Field(default=250, ge=0)
    # Allocations between two runs of Python's cyclic garbage collector in the analytics
    # process (CPython's default is 700; 0 keeps it): see analytics.ingest.consumer.tune_gc.
    ingest_gc_threshold: int = Field(default=100_000, ge=0)
    # Raw executions (the history) are deleted after this many days; rollups stay.
    raw_retention_days: float = 30.0
    purge_interval_seconds: float = 3600.0
    # Data-plane counts vs stored counts, per API and minute: how often, over how
    # long a window, and how long to leave the newest minutes for events in flight.
    reconcile_interval_seconds: float = 300.0
    reconcile_window_minutes: int = 60
    reconcile_settle_seconds: float = 120.0
    # Billing: the platform's share of every invoice, in basis points (2000 = 20 %);
    # how often the billing job refreshes drafts and closes due months (0: never,
    # for tests); how long after a month ends it waits for late events before closing.
    platform_fee_bps: int = Field(default=2000, ge=0, le=10_000)
    billing_interval_seconds: float = Field(default=60.0, ge=0)
    billing_close_grace_seconds: float = Field(default=300.0, ge=0)
