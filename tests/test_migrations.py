"""Migrations: upgrade, downgrade, upgrade again, and no difference left for autogenerate."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from bot.db import create_engine, downgrade, migrate
from bot.models import LZ4_AVAILABLE


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "render_as_batch": True}
    )
    return list(compare_metadata(context, SQLModel.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_downgrade_upgrade_leaves_no_difference(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            assert set(SQLModel.metadata.tables) <= await conn.run_sync(_tables)

        await downgrade(engine, "base")
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) <= {"alembic_version"}

        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


_OUTBOX_TEXT_COMPRESSION = (
    "SELECT attcompression::text FROM pg_attribute "
    "WHERE attrelid = 'outbox'::regclass AND attname = 'text'"
)


async def _outbox_text_compression(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        if (await conn.execute(text(LZ4_AVAILABLE))).first() is None:
            pytest.fail("this PostgreSQL has no lz4: the check below would prove nothing")
        return str((await conn.execute(text(_OUTBOX_TEXT_COMPRESSION))).scalar())


async def test_outbox_text_is_lz4_on_postgresql_migrated_or_created(pg_url: str) -> None:
    """Every digest part is over the 2 kB TOAST threshold: lz4 (l), not pglz (empty: the
    default), whether the database was made by migrations or by create_all."""
    engine = create_engine(pg_url)
    try:
        await migrate(engine)
        assert await _outbox_text_compression(engine) == "l"
        await downgrade(engine, "r1a8d2c4e6f0")
        assert await _outbox_text_compression(engine) == ""
        await downgrade(engine, "base")
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
        assert await _outbox_text_compression(engine) == "l"
    finally:
        await engine.dispose()
