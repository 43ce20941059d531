"""Assembles a build context from a stored upload and the runtime's static Dockerfile.

User data enters the build only as files (their code, their requirements) and
validated values (build args chosen by Veil); the Dockerfile is never templated.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from shared.archive import ArchiveLimits, extract_upload

RUNTIMES_DIR = Path(__file__).resolve().parent.parent / "runtimes"


def dockerfile_for(runtime: str) -> Path:
    path = RUNTIMES_DIR / runtime / "Dockerfile"
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
    """Fill an empty `context_dir`: Dockerfile, requirements.txt, build-ca.crt, src/."""
    src = context_dir / "src"
    src.mkdir(parents=True)
    extract_upload(upload, filename, src, limits)
    shutil.copyfile(dockerfile_for(runtime), context_dir / "Dockerfile")
    requirements = src / "requirements.txt"
    target = context_dir / "requirements.txt"
    if requirements.is_file() and not requirements.is_symlink():
        shutil.copyfile(requirements, target)
    else:
        target.write_bytes(b"")
    ca_target = context_dir / "build-ca.crt"
    if ca_bundle is not None and ca_bundle.is_file():
        shutil.copyfile(ca_bundle, ca_target)
    else:
        ca_target.write_bytes(b"")
