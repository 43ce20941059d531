"""Failpoints: named places where a fault test can stop a job, to kill its process there.

`VEIL_FAILPOINTS=container-started` makes the deploy job stop at that point
(logging `failpoint container-started reached`) for `VEIL_FAILPOINT_SECONDS`
(default 10), as a slow step would, and then go on, so a test can kill the
process there, and see what a survivor would do afterwards. Each point fires
once per data directory (a marker file under `<data_dir>/failpoints/`), so the
job that resumes the work after a restart goes through. Unset (always, outside
fault tests) a failpoint costs one environment lookup.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("veil.executor.failpoints")


def reached(name: str, data_dir: Path) -> None:
    armed = os.environ.get("VEIL_FAILPOINTS", "")
    if not armed or name not in armed.split(","):
        return
    marker = data_dir / "failpoints" / name
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return  # fired once already: the resumed job goes on
    log.warning("failpoint %s reached", name)
    time.sleep(float(os.environ.get("VEIL_FAILPOINT_SECONDS", "10")))
