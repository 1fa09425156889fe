"""Shared fixtures: databases (SQLite and PostgreSQL), fixture feeds, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from bot.db import SessionFactory, create_engine, session_factory

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


# Captured feeds, copied into the repository with their sources (tests/data/feeds/SOURCES.md).
FIXTURES = Path(__file__).resolve().parent / "data" / "feeds"


@pytest.fixture(scope="session")
def feeds_dir() -> Path:
    """tests/data/feeds: the captured feeds the tests parse."""
    return FIXTURES


def _pg_admin_execute(sql: str) -> None:
    """Runs one statement on the maintenance database, in a thread with its own event loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _pg_admin_execute_async(sql)).result()


async def _pg_admin_execute_async(sql: str) -> None:
    import asyncpg

    url = make_url(PG_URL)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "test",
        timeout=5,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"pd_test_{uuid.uuid4().hex[:12]}"
    try:
        _pg_admin_execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # unreachable server, refused login, ...
        where = make_url(PG_URL).render_as_string(hide_password=True)
        reason = f"PostgreSQL at {where} unreachable: {exc}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    _pg_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'press_digest.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'press_digest.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
async def sessions(sqlite_url: str) -> AsyncIterator[SessionFactory]:
    """Sessions on a fresh SQLite database with every table created."""
    engine = create_engine(sqlite_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def any_sessions(db_url: str) -> AsyncIterator[SessionFactory]:
    """Sessions on a fresh database, SQLite and PostgreSQL in turn, every table created."""
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()
