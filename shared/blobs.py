"""Content-addressed, immutable blob store on the local filesystem.

Blobs live at `<root>/sha256/<first two hex>/<full hex>`. A blob is written to
a temporary file in the same directory tree and renamed into place, so a
reader never sees a partial blob and two writers of the same content agree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from shared.errors import NotFound

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"

    def ensure(self) -> None:
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not _HEX64.match(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / "sha256" / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def adopt(self, temp_file: Path, sha256: str) -> Path:
        """Move a fully written temp file (already hashed by the caller) into the store."""
        target = self.path_for(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            temp_file.unlink(missing_ok=True)
        else:
            os.chmod(temp_file, 0o444)
            os.replace(temp_file, target)
        return target

    def open_path(self, sha256: str) -> Path:
        path = self.path_for(sha256)
        if not path.is_file():
            raise NotFound(f"Blob {sha256} is missing from the store.", code="blob_missing")
        return path
