"""Migrations and models agree, and the schema goes down and up again, on both databases."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from shared.db import create_engine
from shared.migrate import alembic_config, upgrade
from shared.models import Base


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_migrations_and_downgrade_works(empty_database_url: str) -> None:
    database_url = empty_database_url
    await asyncio.to_thread(upgrade, database_url)  # from scratch, as on a first `make run`
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        assert await connection.run_sync(_diff) == []
    await engine.dispose()

    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "base")
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        assert await connection.run_sync(_diff) == []
    await engine.dispose()
