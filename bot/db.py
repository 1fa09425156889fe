"""The database: async engine, sessions and migrations, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    any_,
    bindparam,
    cast,
    event,
    false,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.sql.dml import Insert
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.models import Chat  # importing bot.models registers every table

T = TypeVar("T")

log = logging.getLogger(__name__)

# inside the package: an installed wheel has no alembic/ folder beside it
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATE_LOCK = 7_305_431_911  # pg_advisory_xact_lock key: one migration at a time

SessionFactory = async_sessionmaker[AsyncSession]


class _UTCRead(UTCDateTime):
    """sqlmodel's own timestamp type (aware, in UTC), without its Python call per value on
    PostgreSQL, where asyncpg already returns aware UTC datetimes. For the queries that read
    hundreds of thousands of them (the 08:00 rush); see `utc_read`."""

    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)


_UTC_READ = _UTCRead()


def utc_read(column: Any) -> Any:
    """`column` (a timestamp) in a SELECT, read as an aware UTC datetime at the least cost."""
    return type_coerce(column, _UTC_READ)


def dialect_of(where: AsyncSession | SessionFactory) -> str:
    """ "sqlite" or "postgresql": the database a session (or a session factory) talks to.

    The one place that asks; SQL that differs between the two looks here.
    """
    if isinstance(where, AsyncSession):
        return where.get_bind().dialect.name
    bind = where.kw.get("bind")
    if bind is None:
        raise RuntimeError("the session factory has no engine bound")
    return str(bind.dialect.name)


def create_engine(url: str) -> AsyncEngine:
    """An engine for `url`; on SQLite also the file's folder, WAL and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # a folder that cannot be made: the first connection says so, naming DATABASE_URL
            with contextlib.suppress(OSError):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # asyncpg waits 60 s for an unreachable host by default: say so sooner
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, connect_args={"timeout": 10}
    )


class DatabaseUnreachable(Exception):
    """The database at DATABASE_URL cannot be opened; str() is one line naming the variable."""


async def check_reachable(engine: AsyncEngine) -> None:
    """Raises DatabaseUnreachable (password hidden) unless one round trip works."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split()) or type(exc).__name__
        raise DatabaseUnreachable(
            f"cannot open the database at DATABASE_URL={where}: {reason}"
        ) from None


async def lock_for_claim(session: AsyncSession) -> None:
    """Call before reading the rows a worker claims (with FOR UPDATE SKIP LOCKED).

    SQLite ignores FOR UPDATE and takes its write lock only at a transaction's first write,
    so two processes on one file (`run` and `press-digest poll` or `send-digests`) could
    both read, and claim, the same rows. A write that changes nothing takes the lock here
    (like BEGIN IMMEDIATE): claims take turns and each sees what the previous one wrote.
    On PostgreSQL the row locks do the work and this does nothing.
    """
    if dialect_of(session) == "sqlite":
        await session.exec(update(Chat).where(false()).values(paused=Chat.paused))


# ids in one IN (...) list, rows in one multi-row statement: far below SQLite's and asyncpg's
# 32,766 parameters, and short enough that one statement never holds a lock for long
IN_CHUNK = 1000


def pg_array(values: Sequence[Any], item_type: Any) -> Any:
    """PostgreSQL: `values` as one array parameter of `item_type` (cast, for asyncpg)."""
    kind = ARRAY(item_type)
    return cast(bindparam(None, list(values), kind), kind)


def one_of(dialect: str, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`. On PostgreSQL `= ANY(one array)`: an IN list is a parameter per
    value, each compiled, processed and bound on its own (the tick's batches of a thousand
    chat ids and dedup keys spent about 5% of their Python time on that)."""
    found: ColumnElement[bool] = (
        column == any_(pg_array(values, column.type))
        if dialect == "postgresql"
        else column.in_(values)
    )
    return found


def chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """`values` in slices of at most `size` (for IN lists and batched writes)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def finish_transaction(work: Coroutine[Any, Any, T]) -> T:
    """Awaits `work` (one short transaction); a cancellation waits for it to end, then counts.

    A task cancelled inside a SQLite transaction leaves its connection holding the database's
    write lock, and every later write in every process waits its busy timeout and fails. Work
    that a stop may cancel (the sender's rate grants and lease renewals run beside the loop
    that is stopped) goes through here: the transaction commits or rolls back first, then the
    CancelledError goes on.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await task
        raise


def upsert_insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT that takes ON CONFLICT (DO NOTHING / DO UPDATE) and `excluded`."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")


def insert_ignoring_conflicts(dialect: str, table: Table, conflict_columns: list[str]) -> Insert:
    """INSERT ... ON CONFLICT (columns) DO NOTHING, for SQLite and PostgreSQL alike."""
    return upsert_insert(dialect, table).on_conflict_do_nothing(index_elements=conflict_columns)


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[tuple[AsyncEngine, SessionFactory]]:
    engine = create_engine(url)
    try:
        yield engine, session_factory(engine)
    finally:
        await engine.dispose()


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    before = _current_revision(connection)
    command.upgrade(cfg, revision)
    after = _current_revision(connection)
    if after != before:
        log.info("database migrated from %s to %s", before or "empty", after)


def _downgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """`alembic upgrade` on this engine, from inside a running event loop."""
    await check_reachable(engine)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # processes starting together migrate in turn
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
        await conn.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, revision)
