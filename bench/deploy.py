"""Deploy latency per runtime: POST /deploy → first 200 on the data plane, vs `docker run`.

Run: `uv run python -m bench.deploy [--runs N] [--runtime python|node|go|all]`. Starts the
whole platform once, like the e2e test (`python -m launcher`, free loopback ports, temp
data dir, its own instance label). For each runtime it zips that runtime's server example
(runtimes/<lang>/examples/server/, README.md left out), deploys it N times, each time with
a comment line appended to the entry file (a code-only change: a new version), then starts
the image the last deploy built N times with plain docker-py as a baseline (Go: the image's
own command; Python and Node: the registry's command for the uploaded entry). Before each
redeploy the API is stopped (data plane answers 503, its container removed), so the first
200 can only come from the new container. Everything it made is removed.
"""

from __future__ import annotations

import argparse
import io
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import docker
import httpx

from executor.docker_adapter import deployment_container
from runtimes.registry import runtime_spec
from testkit.platform import running_platform

ROOT = Path(__file__).resolve().parents[1]
POLL = 0.02  # seconds between polls of the data plane, the status endpoint, the raw container
NETWORK = "veil-functions"
DEVELOPER = {"email": "bench@example.com", "password": "bench pass 1", "role": "developer"}
FIRST_200_TIMEOUT = 600.0  # a cold Go build compiles the standard library
RAW_TIMEOUT = 30.0
START_TARGET = 0.5  # seconds, container start → first response (the target)


@dataclass(frozen=True)
class Sample:
    runtime: str
    entry: str  # the file a comment line is appended to
    comment: bytes  # that language's line comment
    warm_target: float  # seconds, code-only redeploy → first 200 (the target)


SAMPLES = {
    "python": Sample("python", "main.py", b"#", 3.0),
    "node": Sample("node", "index.js", b"//", 3.0),
    "go": Sample("go", "main.go", b"//", 12.0),
}


@dataclass
class Run:
    deployment_id: str
    first_200: float  # POST /deploy → first 200 through the data plane (client clock)
    running_seen: float  # POST /deploy → status endpoint first says running
    queue: float  # created_at → "building" (the worker picks the job up), server clock
    build: float  # "building" → "starting" (image build), server clock
    start: float  # "starting" → ready_at (container start + readiness probe), server clock
    switch: float  # ready_at → first 200 through the data plane
    cached: bool  # the first RUN layer (dependencies / toolchain) came from the build cache


@dataclass
class Result:
    sample: Sample
    runs: list[Run] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)  # docker run → first answer
    command: list[str] | None = None  # the raw run's command (None: the image's own)


SPLIT = [
    ("queue (created_at → building)", "queue"),
    ("image build (building → starting)", "build"),
    ("start + ready (starting → ready_at)", "start"),
    ("route switch (ready_at → first 200)", "switch"),
    ("POST → status says running", "running_seen"),
]


@dataclass
class App:
    api: httpx.Client  # the gateway
    plane: httpx.Client  # the data plane
    base: str  # /api/v1/apis/<id>
    slug: str
    auth: dict[str, str]

    def plane_status(self) -> int:
        return answers(self.plane, f"/{self.slug}/", self.auth)


def wait_for(what: str, check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(POLL)


def answers(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status, or 0 when nothing answered."""
    try:
        return client.get(url, headers=headers).status_code
    except httpx.HTTPError:
        return 0


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def example_zip(sample: Sample, run: int) -> bytes:
    """The runtime's server example as a zip, with a comment line appended to its entry."""
    root = ROOT / "runtimes" / sample.runtime / "examples" / "server"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            name = path.relative_to(root).as_posix()
            if not path.is_file() or name == "README.md":
                continue
            data = path.read_bytes()
            if name == sample.entry:
                data += b"\n" + sample.comment + f" bench run {run}\n".encode()
            archive.writestr(name, data)
    return buffer.getvalue()


def upload(app: App, content: bytes) -> dict[str, Any]:
    files = {"file": ("app.zip", content)}
    answer = app.api.post(f"{app.base}/upload", headers=app.auth, files=files)
    assert answer.status_code == 201, answer.text
    version: dict[str, Any] = answer.json()
    return version


def deploy_once(app: App, gateway: str, data: Path) -> Run:
    seen: dict[str, float] = {}  # client time when each status was first seen
    marks: dict[str, float] = {}  # updated_at when each status was first seen
    final: dict[str, Any] = {}
    done = threading.Event()
    t0, wall0 = time.monotonic(), time.time()
    answer = app.api.post(f"{app.base}/deploy", headers=app.auth)
    assert answer.status_code == 202, answer.text
    deployment_id = answer.json()["deployment_id"]

    def watch() -> None:
        with httpx.Client(base_url=gateway, timeout=10) as client:
            while not done.is_set():
                try:
                    status = client.get(f"{app.base}/status", headers=app.auth).json()
                except httpx.HTTPError:
                    status = {}
                if status.get("deployment_id") == deployment_id:
                    seen.setdefault(status["status"], time.monotonic() - t0)
                    marks.setdefault(status["status"], ts(status["updated_at"]))
                    if status["status"] in ("running", "failed"):
                        final.update(status)
                        return
                done.wait(POLL)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        wait_for(
            "first 200",
            lambda: "failed" in seen or app.plane_status() == 200,
            FIRST_200_TIMEOUT,
        )
        first_200 = time.monotonic() - t0
        watcher.join(timeout=30)
    finally:
        done.set()
    assert final.get("status") == "running", final
    created, ready = ts(final["created_at"]), ts(final["ready_at"])
    building, built = marks.get("building", created), marks.get("starting", ready)
    log = (data / "logs" / "builds" / f"{deployment_id}.log").read_text(errors="replace")
    steps = log.splitlines()
    dep = next((i for i, line in enumerate(steps) if "RUN set -eu" in line), -2)
    return Run(
        deployment_id=deployment_id,
        first_200=first_200,
        running_seen=seen["running"],
        queue=building - created,
        build=built - building,
        start=ready - built,
        switch=wall0 + first_200 - ready,
        cached="Using cache" in "".join(steps[dep + 1 : dep + 2]),
    )


def stop_api(app: App, label: str) -> None:
    """Stop the API and wait until its container is gone, i.e. the stop job is over.

    The job takes the API off the data plane first and removes the container after:
    a deploy posted before that would queue behind it in the one build queue, which
    a real redeploy (old container still serving, nothing queued) never does.
    """
    assert app.api.post(f"{app.base}/stop", headers=app.auth).status_code == 202
    status = partial(app.api.get, f"{app.base}/status", headers=app.auth)
    wait_for(
        "API stop",
        lambda: status().json()["status"] == "stopped" and app.plane_status() == 503,
        30,
    )
    api_id = app.base.rsplit("/", 1)[1]
    filters = {"label": [f"veil.instance={label}", f"veil.api_id={api_id}"]}
    client = docker.from_env()
    try:
        wait_for(
            "stopped container removed",
            lambda: not client.containers.list(all=True, filters=filters),
            30,
        )
    finally:
        client.close()


def raw_docker(label: str, deployment_id: str, command: list[str] | None, runs: int) -> list[float]:
    """`docker run` of the image deployment `deployment_id` runs → first answer, `runs` times."""
    client = docker.from_env()
    times: list[float] = []
    try:
        image_id = deployment_container(client, deployment_id).image.id
        with httpx.Client(timeout=0.5) as http:
            for _ in range(runs):
                t0 = time.monotonic()
                container = client.containers.run(
                    image_id,
                    command,  # None: the image's own command (Go, FROM scratch)
                    detach=True,
                    network=NETWORK,
                    environment={"PORT": "8080"},
                    labels={"veil.instance": label},  # removed with the platform, at worst
                )
                try:
                    container.reload()
                    ip = container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
                    url = f"http://{ip}:8080/"
                    wait_for("raw container", partial(answers, http, url), RAW_TIMEOUT)
                    times.append(time.monotonic() - t0)
                finally:
                    container.remove(force=True)
    finally:
        client.close()
    return times


def bench_runtime(
    sample: Sample,
    runs: int,
    api: httpx.Client,
    plane: httpx.Client,
    auth: dict[str, str],
    gateway: str,
    data: Path,
    label: str,
) -> Result:
    result = Result(sample)
    body = {"name": f"Bench {sample.runtime}"}
    created = api.post("/api/v1/apis", json=body, headers=auth).json()
    app = App(api, plane, f"/api/v1/apis/{created['id']}", created["slug"], auth)
    entry = sample.entry
    for i in range(1, runs + 1):
        version = upload(app, example_zip(sample, i))  # code-only: a new version
        assert version["runtime"] == sample.runtime, version
        entry = version["entry"]
        if i > 1:
            stop_api(app, label)
        r = deploy_once(app, gateway, data)
        result.runs.append(r)
        print(
            f"[{sample.runtime}] run {i}: first 200 {r.first_200:.3f} s,"
            f" running seen {r.running_seen:.3f} (queue {r.queue:.3f}, build {r.build:.3f},"
            f" start {r.start:.3f}, switch {r.switch:.3f}), first RUN layer cached: {r.cached}",
            flush=True,
        )
    spec = runtime_spec(sample.runtime)
    result.command = spec.command("server", entry) if spec.entry_in_command else None
    result.raw = raw_docker(label, result.runs[-1].deployment_id, result.command, runs)
    print(f"[{sample.runtime}] raw docker run: " + ", ".join(f"{t:.3f}" for t in result.raw))
    return result


def row(name: str, values: list[float]) -> str:
    med = statistics.median(values)
    return f"  {name:<44} {med:8.3f} {min(values):8.3f} {max(values):8.3f} {len(values):4d}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(result: Result) -> None:
    sample = result.sample
    first, again = result.runs[:1], result.runs[1:]
    print(f"\n{sample.runtime}: runtimes/{sample.runtime}/examples/server")
    print(f"  {'seconds':<44} {'median':>8} {'min':>8} {'max':>8} {'n':>4}")
    print(row("first deploy → first 200", [r.first_200 for r in first]))
    print(row("code-only redeploy → first 200", [r.first_200 for r in again]))
    print(row("container start → first response", [r.start for r in again]))
    print(row("raw docker run → first answer", result.raw))
    for name, group in (("first deploy", first), ("redeploy", again)):
        print(f"  split of {name} (server timestamps):")
        for title, attr in SPLIT:
            print(row(f"  {title}", [getattr(r, attr) for r in group]))
    command = " ".join(result.command) if result.command else "the image's own command"
    print(f"  raw docker run command: {command}")
    if first[0].cached:
        print("  note: the first deploy's first RUN layer came from Docker's build cache")


def summary(results: list[Result]) -> None:
    print("\nTargets (from the issue), medians of the code-only redeploys:")
    head = f"  {'runtime':<8} {'redeploy':>9} {'raw':>7} {'ratio':>7}  {'warm target':<18}"
    print(head + f" {'start→1st':>9}  start target")
    for result in results:
        again = result.runs[1:]
        redeploy = statistics.median(r.first_200 for r in again)
        raw = statistics.median(result.raw)
        start = statistics.median(r.start for r in again)
        target = result.sample.warm_target
        warm = f"≤ {target:g} s {verdict(redeploy <= target)}"
        start_ok = f"≤ {START_TARGET:g} s {verdict(start <= START_TARGET)}"
        print(
            f"  {result.sample.runtime:<8} {redeploy:8.3f}s {raw:6.3f}s {redeploy / raw:6.2f}x"
            f"  {warm:<18} {start:8.3f}s  {start_ok}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="deploys and raw runs (min 2)")
    parser.add_argument("--runtime", choices=[*SAMPLES, "all"], default="all")
    args = parser.parse_args()
    runs = max(2, args.runs)
    chosen = list(SAMPLES) if args.runtime == "all" else [args.runtime]
    label = f"bench-{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix="veil-bench-"))
    results: list[Result] = []
    try:
        with (
            running_platform(tmp, label) as platform,
            httpx.Client(base_url=platform.gateway, timeout=30) as api,
            httpx.Client(base_url=platform.dataplane, timeout=5) as plane,
        ):
            token = api.post("/api/v1/auth/signup", json=DEVELOPER).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            for name in chosen:
                results.append(
                    bench_runtime(
                        SAMPLES[name],
                        runs,
                        api,
                        plane,
                        auth,
                        platform.gateway,
                        tmp / "data",
                        label,
                    )
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nVeil deploy benchmark: {runs} runs, instance {label}, poll every {POLL * 1000:g} ms")
    for result in results:
        report(result)
    summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
