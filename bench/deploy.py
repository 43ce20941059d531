"""Deploy latency: POST /deploy → first 200 through the data plane, against a raw `docker run`.

Run: `uv run python -m bench.deploy [--runs N]`. Starts the whole platform like the e2e
test (`python -m launcher`, free loopback ports, temp data dir, its own instance label),
deploys the sample app N times, then starts the image it built N times with plain
docker-py as a baseline. Before each redeploy the API is stopped (data plane answers 503),
so the first 200 can only come from the new container. Everything it made is removed.
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
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import docker
import httpx

from launcher.harness import running_platform

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = (ROOT / "runtimes/python/examples/server/main.py").read_bytes()
POLL = 0.02  # seconds between polls of the data plane, the status endpoint, the raw container
NETWORK = "veil-functions"
DEVELOPER = {"email": "bench@example.com", "password": "bench pass 1", "role": "developer"}


@dataclass
class Run:
    first_200: float  # POST /deploy → first 200 through the data plane (client clock)
    running_seen: float  # POST /deploy → status endpoint first says running
    queue: float  # created_at → "building" (the worker picks the job up), server clock
    build: float  # "building" → "starting" (image build), server clock
    start: float  # "starting" → ready_at (container start + readiness probe), server clock
    switch: float  # ready_at → first 200 through the data plane
    cached: bool  # the dependency layer came from Docker's build cache


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


def upload(app: App, code: bytes) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("main.py", code)
    files = {"file": ("app.zip", buffer.getvalue())}
    answer = app.api.post(f"{app.base}/upload", headers=app.auth, files=files)
    assert answer.status_code == 201, answer.text


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
        wait_for("first 200", lambda: "failed" in seen or app.plane_status() == 200, 180)
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
        first_200=first_200,
        running_seen=seen["running"],
        queue=building - created,
        build=built - building,
        start=ready - built,
        switch=wall0 + first_200 - ready,
        cached="Using cache" in "".join(steps[dep + 1 : dep + 2]),
    )


def stop_api(app: App) -> None:
    assert app.api.post(f"{app.base}/stop", headers=app.auth).status_code == 202
    status = partial(app.api.get, f"{app.base}/status", headers=app.auth)
    wait_for(
        "API stop",
        lambda: status().json()["status"] == "stopped" and app.plane_status() == 503,
        30,
    )


def raw_docker(label: str, runs: int) -> list[float]:
    client = docker.from_env()
    times: list[float] = []
    try:
        images = client.images.list(filters={"label": f"veil.instance={label}"})
        image = max(images, key=lambda i: str(i.attrs["Created"]))
        with httpx.Client(timeout=0.5) as http:
            for _ in range(runs):
                t0 = time.monotonic()
                container = client.containers.run(
                    image.id,
                    ["python3", "/app/main.py"],
                    detach=True,
                    network=NETWORK,
                    environment={"PORT": "8080"},
                    labels={"veil.instance": label},
                )
                try:
                    container.reload()
                    ip = container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
                    wait_for("raw container", partial(answers, http, f"http://{ip}:8080/"), 30)
                    times.append(time.monotonic() - t0)
                finally:
                    container.remove(force=True)
    finally:
        client.close()
    return times


def row(name: str, values: list[float]) -> str:
    med = statistics.median(values)
    return f"  {name:<44} {med:8.3f} {min(values):8.3f} {max(values):8.3f} {len(values):4d}"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="deploys and raw runs (min 2)")
    runs = max(2, parser.parse_args().runs)
    label = f"bench-{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix="veil-bench-"))
    results: list[Run] = []
    try:
        with (
            running_platform(tmp, label) as platform,
            httpx.Client(base_url=platform.gateway, timeout=30) as api,
            httpx.Client(base_url=platform.dataplane, timeout=5) as plane,
        ):
            token = api.post("/api/v1/auth/signup", json=DEVELOPER).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            created = api.post("/api/v1/apis", json={"name": "Bench"}, headers=auth).json()
            app = App(api, plane, f"/api/v1/apis/{created['id']}", created["slug"], auth)
            upload(app, SAMPLE)
            for i in range(1, runs + 1):
                upload(app, SAMPLE + f"\n# run {i}\n".encode())  # code-only: a new version
                if i > 1:
                    stop_api(app)
                r = deploy_once(app, platform.gateway, tmp / "data")
                results.append(r)
                print(
                    f"run {i}: first 200 {r.first_200:.3f} s, running seen {r.running_seen:.3f}"
                    f" (queue {r.queue:.3f}, build {r.build:.3f}, start {r.start:.3f},"
                    f" switch {r.switch:.3f}), dependency layer cached: {r.cached}",
                    flush=True,
                )
            raw = raw_docker(label, runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    first, again = results[:1], results[1:]
    print(f"\nVeil deploy benchmark: {runs} runs, instance {label}, poll every {POLL * 1000:g} ms")
    print(f"  {'seconds':<44} {'median':>8} {'min':>8} {'max':>8} {'n':>4}")
    print(row("first deploy (image build cold for this API)", [r.first_200 for r in first]))
    print(row("redeploy (code-only change) → first 200", [r.first_200 for r in again]))
    print(row("raw docker run → first answer", raw))
    for name, group in (("first deploy", first), ("redeploy", again)):
        print(f"  split of {name} (server timestamps):")
        for title, field in SPLIT:
            print(row(f"  {title}", [getattr(r, field) for r in group]))
    ratio = statistics.median(r.first_200 for r in again) / statistics.median(raw)
    print(f"  {'redeploy median / raw docker run median':<44} {ratio:7.2f}x")
    if first[0].cached:
        print("  note: the first deploy's dependency layer came from Docker's build cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
