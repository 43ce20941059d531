"""Assembles a build context from a stored upload and the runtime's static Dockerfile.

User data enters the build only as files (their code, their requirements) and
validated values (build args chosen by Veil); the Dockerfile is never templated.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from runtimes.registry import runtime_spec
from shared.archive import ArchiveLimits, extract_upload


def dockerfile_for(runtime: str) -> Path:
    path = runtime_spec(runtime).dockerfile
    if not path.is_file():
        raise FileNotFoundError(f"no Dockerfile for runtime {runtime!r}")
    return path


def prepare_context(
    context_dir: Path,
    upload: Path,
    filename: str,
    runtime: str,
    ca_bundle: Path | None,
    limits: ArchiveLimits,
) -> None:
    """Fill an empty `context_dir`: Dockerfile, the runtime's dependency manifests
    (requirements.txt; package.json + package-lock.json; go.mod + go.sum: the
    user's, or empty files when absent), build-ca.crt, shim/ and src/ (see
    runtimes/registry.py)."""
    spec = runtime_spec(runtime)
    src = context_dir / "src"
    src.mkdir(parents=True)
    extract_upload(upload, filename, src, limits)
    shutil.copyfile(dockerfile_for(runtime), context_dir / "Dockerfile")
    for name in spec.manifests:
        manifest = src / name
        target = context_dir / name
        if manifest.is_file() and not manifest.is_symlink():
            shutil.copyfile(manifest, target)
        else:
            target.write_bytes(b"")
    # Veil's shim sits beside src/, never inside it: no user file can replace it.
    shutil.copytree(
        spec.shim_dir, context_dir / "shim", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    ca_target = context_dir / "build-ca.crt"
    if ca_bundle is not None and ca_bundle.is_file():
        shutil.copyfile(ca_bundle, ca_target)
    else:
        ca_target.write_bytes(b"")
