"""Apply Alembic migrations programmatically (used by `make run`, the launcher and tests)."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str) -> None:
    """Bring the schema to head. Must not be called from inside a running event loop."""
    command.upgrade(alembic_config(database_url), "head")


if __name__ == "__main__":
    upgrade(sys.argv[1])
