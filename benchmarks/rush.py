"""The 08:00 rush: N chats all due at one minute, queued by `queue_due_digests`.

Goals (issue 12): SQLite 10,000 chats <= 3 s; PostgreSQL 100,000 <= 20 s and 1,000,000
<= 3 min (`--chats 1000000`), peak memory < 500 MB. The machine's speed varies about 2x
between runs, so beside each figure are two yardsticks measured in the same run on the same
database: `cpu` (a fixed pure-Python loop) and `db` (20,000 two-column rows inserted with
executemany and read back); "x cpu" / "x db" are the tick's time over the yardstick's.

Data (seeded, `generate`): the whole catalogue as topics, most chats following 1-5 of them
(Zipf, /start's popular buttons 6x as often), a quarter with a few free-text queries from a
long tail (a
pool of N/20 distinct queries, 5% of which match something), 35% in Chinese, timezones of
UTC+8 plus London at midnight (the same minute in UTC), 15% weekly, 10% groups, some with a
forum thread; 30 days of releases (300 a day: 45% match no catalogue topic, 40% one, 15%
two, the topics flatter than Zipf). The tick runs in a
child process so its peak RSS is its own; `--schedulers N` runs N of them at once on the
PostgreSQL database, as N `--role scheduler` processes would (the tick from the first one's
start to the last one's end; no digest queued twice).

`--explain` prints EXPLAIN (ANALYZE, BUFFERS) (SQLite: EXPLAIN QUERY PLAN) of the due-digest
claim and the match-window query before the tick, and the outbox claim after it (the
outbox then holds the rush).

Run: .venv/bin/python -m benchmarks.rush [--chats N] [--sqlite-chats N] [--explain]
     [--only sqlite|postgres] [--schedulers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from itertools import accumulate
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from benchmarks.compose import _text
from benchmarks.memory import peak_rss_mb
from bot.db import create_engine, session_factory
from bot.delivery.outbox import claim_queries
from bot.digest.service import (
    CLAIM_BATCH,
    claim_chats_query,
    due_chats_condition,
    matches_query,
    queue_due_digests,
)
from bot.matching.catalogue import all_topics
from bot.models import Chat, Match, OutboxMessage, Release, Subscription, Topic

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
DUE = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Monday 08:00 in Hong Kong
NOW = DUE + timedelta(seconds=90)  # the tick after the minute: every chat is due
GOALS = {"sqlite": (10_000, 3.0), "postgres": (100_000, 20.0), "postgres-1M": (1_000_000, 180.0)}
GOAL_RSS_MB = 500.0
SEED = 12
CHUNK = 20_000
# (timezone, local digest time): all the same moment in UTC, DUE
ZONES = [
    ("Asia/Hong_Kong", dtime(8, 0), 0.70),
    ("Asia/Shanghai", dtime(8, 0), 0.10),
    ("Asia/Taipei", dtime(8, 0), 0.06),
    ("Asia/Singapore", dtime(8, 0), 0.06),
    ("Asia/Macau", dtime(8, 0), 0.04),
    ("Europe/London", dtime(0, 0), 0.04),
]
HISTORY_DAYS = 30
RELEASES_A_DAY = 300


def _zipf(n: int, s: float = 1.1) -> list[float]:
    return [1 / (rank + 1) ** s for rank in range(n)]


def generate(chats: int, seed: int = SEED) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The rows to insert, (table, rows) in chunks, in an order the foreign keys accept."""
    rng = random.Random(seed)
    catalogue = all_topics()
    rng.shuffle(catalogue)  # which ones are popular: seeded
    topics = [
        {"id": n + 1, "query": f"@{t.key}", "label": t.name_en, "created_at": DUE}
        for n, t in enumerate(catalogue)
    ]
    free = max(1_000, chats // 20)
    first_free = len(topics) + 1
    topics += [
        {
            "id": first_free + n,
            "query": f"q{n} {_text(rng, 1).lower()}",
            "label": f"Q{n} {_text(rng, 1)}",
            "created_at": DUE,
        }
        for n in range(free)
    ]
    yield "topic", topics
    releases, matches = [], []
    catalogue_ids = list(range(1, len(catalogue) + 1))
    # the popular topics are /start's buttons: most people tap those
    catalogue_weights = [
        w * (6 if t.popular else 1) for w, t in zip(_zipf(len(catalogue)), catalogue, strict=True)
    ]
    release_weights = _zipf(len(catalogue_ids), 0.5)
    free_ids = list(range(first_free, first_free + free))
    matching_free = rng.sample(free_ids, max(1, free // 20))
    total = HISTORY_DAYS * RELEASES_A_DAY
    for n in range(total):
        seen = DUE - timedelta(seconds=(n + 1) * HISTORY_DAYS * 86_400 / total)
        releases.append(
            {
                "id": n + 1,
                "link": f"https://www.info.gov.hk/gia/general/P{n:07d}.htm",
                "guid": f"P{n:07d}",
                "canonical_link": f"https://www.info.gov.hk/gia/general/P{n:07d}.htm",
                "fingerprint": f"{n:064d}",
                "title": _text(rng, rng.randint(6, 14)),
                "summary": _text(rng, rng.randint(20, 40)),
                "body": "",
                "published_at": seen - timedelta(minutes=5),
                "content_hash": f"{n:064d}",
                "first_seen_at": seen,
                "updated_at": seen,
                "announce": True,
                "revision": 0,
            }
        )
        # about half the releases are about a catalogue topic, some about two; what releases
        # are about is flatter than what people follow
        k = rng.choices((0, 1, 2), (45, 40, 15))[0]
        found = set(rng.choices(catalogue_ids, release_weights, k=k))
        found.update(t for t in matching_free if rng.random() < 2 / RELEASES_A_DAY)
        matches += [
            {"release_id": n + 1, "topic_id": t, "in_title": rng.random() < 0.4, "matched_at": seen}
            for t in sorted(found)
        ]
    yield "release", releases
    yield "match", matches
    # cumulative once: choices(weights=) sums all 50,000 weights at every call (1M chats: minutes)
    free_cumulative = list(accumulate(_zipf(free, 0.8)))
    zones, zone_weights = [(z, t) for z, t, _ in ZONES], [w for *_, w in ZONES]
    for start in range(0, chats, CHUNK):
        chat_rows, subs = [], []
        for n in range(start, min(start + CHUNK, chats)):
            zone, at = rng.choices(zones, zone_weights)[0]
            weekly = rng.random() < 0.15
            group = rng.random() < 0.10
            tick_end = rng.choice((0, 30, 60))  # yesterday's (last week's) ticks
            last = DUE - timedelta(days=7 if weekly else 1, seconds=60 - tick_end)
            if rng.random() < 0.02:
                last = None  # its first digest
            chat_rows.append(
                {
                    "id": n + 1,
                    "telegram_id": -(10**12) - n if group else 10_000 + n,
                    "type": "supergroup" if group else "private",
                    "language": "zh" if rng.random() < 0.35 else "en",
                    "timezone": zone,
                    "digest_time": at,
                    "digest_weekday": 0,  # DUE is a Monday
                    "frequency": "weekly" if weekly else "daily",
                    "paused": False,
                    "active": True,
                    "next_digest_at": DUE + timedelta(seconds=rng.randrange(60)),
                    "last_digest_at": last,
                    "created_at": DUE - timedelta(days=200),
                    "updated_at": DUE,
                }
            )
            followed: set[int] = set()
            if rng.random() < 0.92:
                k = rng.choices((1, 2, 3, 4, 5), (30, 25, 20, 15, 10))[0]
                while len(followed) < k:
                    followed.add(rng.choices(catalogue_ids, catalogue_weights)[0])
            if rng.random() < 0.25 or not followed:
                followed.update(
                    rng.choices(free_ids, cum_weights=free_cumulative, k=rng.randint(1, 3))
                )
            thread = 77 if group and rng.random() < 0.3 else 0
            for topic_id in sorted(followed):
                recent = rng.random() < 0.01  # subscribed since the last digest
                subs.append(
                    {
                        "chat_id": n + 1,
                        "thread_id": thread if rng.random() < 0.5 else 0,
                        "topic_id": topic_id,
                        "query_text": topics[topic_id - 1]["query"],
                        "created_at": DUE - timedelta(hours=3)
                        if recent
                        else DUE - timedelta(days=rng.randint(8, 200)),
                    }
                )
        yield "chat", chat_rows
        yield "subscription", subs


TABLES = {
    "topic": Topic.__table__,  # type: ignore[attr-defined]
    "release": Release.__table__,  # type: ignore[attr-defined]
    "match": Match.__table__,  # type: ignore[attr-defined]
    "chat": Chat.__table__,  # type: ignore[attr-defined]
    "subscription": Subscription.__table__,  # type: ignore[attr-defined]
}


async def _copy(conn: AsyncConnection, table: str, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY (seconds for a million rows); SQLite executemany."""
    if conn.dialect.name != "postgresql":
        await conn.execute(insert(TABLES[table]), rows)
        return
    raw = await conn.get_raw_connection()
    columns = list(rows[0])
    records = [tuple(row[c] for c in columns) for row in rows]
    await raw.driver_connection.copy_records_to_table(table, records=records, columns=columns)  # type: ignore[union-attr]


async def seed(url: str, chats: int) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
        for table, rows in generate(chats):
            if rows:
                await _copy(conn, table, rows)
        if conn.dialect.name == "postgresql":
            for table in ("topic", "release", "chat"):
                await conn.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
                )
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
        else:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    await engine.dispose()


def cpu_yardstick() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i * i % 7
    return time.perf_counter() - started


async def db_yardstick(url: str) -> float:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE yardstick (id INTEGER PRIMARY KEY, t TEXT)"))
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO yardstick (id, t) VALUES (:id, :t)"),
            [{"id": n, "t": f"row {n}"} for n in range(20_000)],
        )
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, t FROM yardstick"))).all()
    elapsed = time.perf_counter() - started
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE yardstick"))
    await engine.dispose()
    assert len(rows) == 20_000
    return elapsed


async def _explain(conn: AsyncConnection, title: str, stmt: Any) -> None:
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    names = compiled.positiontup or []
    values = tuple(params[name] for name in names)
    if conn.dialect.name == "postgresql":
        prefix = "EXPLAIN (ANALYZE, BUFFERS) "
    else:
        prefix = "EXPLAIN QUERY PLAN "
        values = tuple(v.isoformat(" ") if isinstance(v, datetime) else v for v in values)
    print(f"\n--- EXPLAIN: {title} ---")
    rows = (await conn.exec_driver_sql(prefix + str(compiled), values)).all()
    for row in rows:
        print("   ", row[-1])
    await conn.rollback()  # EXPLAIN ANALYZE of a FOR UPDATE locked rows: let them go


async def _explain_before(url: str) -> None:
    engine = create_engine(url)
    async with engine.connect() as conn:
        await _explain(
            conn,
            f"the due-digest claim (first {CLAIM_BATCH} due chats, first due first)",
            claim_chats_query(due_chats_condition(NOW), None, by_due=True),
        )
        popular = list(range(1, 41))
        await _explain(
            conn,
            "the match window (40 topics, since yesterday's digest)",
            matches_query(popular, DUE - timedelta(days=1, seconds=60), NOW - timedelta(minutes=1)),
        )
    await engine.dispose()


async def _explain_after(url: str) -> None:
    engine = create_engine(url)
    async with engine.connect() as conn:
        queued = (await conn.execute(select(func.count()).select_from(OutboxMessage))).scalar()
        await _explain(
            conn,
            f"the outbox claim (queued rows, 2 x 50 for a sender; {queued:,} in the outbox)",
            claim_queries(datetime.now(UTC) + timedelta(minutes=1), 100)[1],
        )
    await engine.dispose()


async def _tick(url: str, explain: bool, index: int, barrier: Any) -> dict[str, Any]:
    """One scheduler process's tick: process 0 also measures the yardsticks before it and
    checks the outbox after every process is done."""
    lead = index == 0
    if lead and explain:
        await _explain_before(url)
    db_yard = await db_yardstick(url) if lead else 0.0
    cpu_yard = cpu_yardstick() if lead else 0.0
    engine = create_engine(url)
    sessions = session_factory(engine)
    rss_before = peak_rss_mb()
    await asyncio.to_thread(barrier.wait)  # every scheduler starts at once
    started = time.time()
    queued = await queue_due_digests(sessions, NOW)
    ended = time.time()
    rss = peak_rss_mb()
    await asyncio.to_thread(barrier.wait)
    figures: dict[str, Any] = {
        "started": started,
        "ended": ended,
        "queued": queued,
        "rss_mb": rss,
        "rss_before_mb": rss_before,
    }
    if not lead:
        await engine.dispose()
        return figures
    again = await queue_due_digests(sessions, NOW)
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
        # first due first: the outbox ids follow the chats' due times
        order = (
            await conn.execute(
                select(Chat.__table__.c.id)  # type: ignore[attr-defined]
                .join(outbox, outbox.c.chat_id == Chat.__table__.c.id)  # type: ignore[attr-defined]
                .order_by(outbox.c.id)
                .limit(2000)
            )
        ).all()
        chats_with = (
            await conn.execute(select(func.count(func.distinct(outbox.c.chat_id))))
        ).scalar()
        # never one digest twice, however many schedulers: one first part per (chat, thread)
        doubled = (
            await conn.execute(
                select(func.count()).select_from(
                    select(outbox.c.chat_id, outbox.c.thread_id)
                    .where(outbox.c.kind == "digest", outbox.c.dedup_key.like("%:0"))
                    .group_by(outbox.c.chat_id, outbox.c.thread_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
        ).scalar()
    await engine.dispose()
    if explain:
        await _explain_after(url)
    figures.update(
        again=again,
        rows=rows,
        doubled=doubled,
        chats_with_digest=chats_with,
        cpu_yard=cpu_yard,
        db_yard=db_yard,
        first_ids=[r[0] for r in order[:3]],
    )
    return figures


def _run_tick(url: str, explain: bool, index: int, barrier: Any, out: Any) -> None:
    out.put((index, asyncio.run(_tick(url, explain, index, barrier))))


def _run_schedulers(url: str, schedulers: int, explain: bool) -> dict[str, Any]:
    """`schedulers` processes tick at once on the database, as `--role scheduler` processes
    would; the tick's time is from the first one's start to the last one's end."""
    context = get_context("spawn")
    barrier, out = context.Barrier(schedulers), context.Queue()
    processes = [
        context.Process(target=_run_tick, args=(url, explain, n, barrier, out))
        for n in range(schedulers)
    ]
    for process in processes:
        process.start()
    results: dict[int, dict[str, Any]] = {}
    try:
        while len(results) < schedulers:
            try:
                index, figures = out.get(timeout=5)
                results[index] = figures
            except queue.Empty:  # a scheduler that died says nothing: stop, don't wait
                failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if failed:
                    raise RuntimeError(f"a scheduler process exited with {failed[0]}") from None
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    lead = results[0]
    queued = sum(r["queued"] for r in results.values())
    assert lead["again"] == 0 and lead["rows"] == queued, (lead["again"], lead["rows"], queued)
    assert lead["doubled"] == 0, f"{lead['doubled']} digests queued twice"
    return {
        **lead,
        "seconds": max(r["ended"] for r in results.values())
        - min(r["started"] for r in results.values()),
        "queued": queued,
        "rss_mb": max(r["rss_mb"] for r in results.values()),
        "schedulers": schedulers,
    }


def _pg_admin(sql: str) -> None:
    async def run() -> None:
        import asyncpg

        url = make_url(PG_URL)
        conn = await asyncpg.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password,
            database=url.database or "test",
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def bench(
    backend: str, chats: int, *, explain: bool = False, schedulers: int = 1
) -> dict[str, Any]:
    name = f"bench_rush_{uuid.uuid4().hex[:8]}"
    folder = tempfile.TemporaryDirectory()
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(folder.name) / 'rush.db'}"
    else:
        _pg_admin(f'CREATE DATABASE "{name}"')
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        started = time.perf_counter()
        asyncio.run(seed(url, chats))
        seeded = time.perf_counter() - started
        figures = _run_schedulers(url, schedulers, explain)
    finally:
        if backend != "sqlite":
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        folder.cleanup()
    figures.update(backend=backend, chats=chats, seed_s=seeded)
    return figures


def _print(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'database':<10} {'procs':>5} {'chats':>10} {'digests':>9} {'messages':>9} {'tick s':>8} "
        f"{'chats/s':>9} {'peak MB':>8} {'cpu yd s':>8} {'x cpu':>6} {'db yd s':>8} "
        f"{'x db':>6} {'goal':>14}"
    )
    for r in rows:
        key = r["backend"] if r["chats"] < 1_000_000 else "postgres-1M"
        goal_chats, goal_s = GOALS.get(key, (r["chats"], float("nan")))
        scaled = goal_s * r["chats"] / goal_chats
        verdict = "ok" if r["seconds"] <= scaled and r["rss_mb"] < GOAL_RSS_MB else "MISSED"
        print(
            f"{r['backend']:<10} {r['schedulers']:>5} {r['chats']:>10,} "
            f"{r['chats_with_digest']:>9,} {r['queued']:>9,} {r['seconds']:>8.2f} "
            f"{r['chats'] / r['seconds']:>9,.0f} "
            f"{r['rss_mb']:>8.0f} {r['cpu_yard']:>8.3f} {r['seconds'] / r['cpu_yard']:>6.1f} "
            f"{r['db_yard']:>8.3f} {r['seconds'] / r['db_yard']:>6.1f} "
            f"{f'<= {scaled:.0f} s {verdict}':>14}"
        )
    print(
        "procs: scheduler processes ticking at once (--schedulers; tick s from the first "
        "one's start to the last one's end, peak MB the largest one's); digests: chats that "
        "got one (the others' topics matched nothing new); tick s: queue_due_digests alone, "
        "in child processes (peak MB is a VmHWM, the seeded data "
        "already in the database); goals: SQLite 10k <= 3 s, PostgreSQL 100k <= 20 s, "
        f"1M <= 180 s, memory < {GOAL_RSS_MB:.0f} MB. cpu yd: 3M-step Python loop; db yd: "
        "20,000 rows inserted and read back on the same database."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100_000, help="PostgreSQL chats")
    parser.add_argument("--sqlite-chats", type=int, default=10_000)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument(
        "--schedulers", type=int, default=1, help="PostgreSQL scheduler processes ticking at once"
    )
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks rush` leaves "rush"
    rows = []
    if args.only != "postgres":
        rows.append(bench("sqlite", args.sqlite_chats, explain=args.explain))
    if args.only != "sqlite":
        rows.append(bench("postgres", args.chats, explain=args.explain, schedulers=args.schedulers))
    print()
    _print(rows)


if __name__ == "__main__":
    main()
