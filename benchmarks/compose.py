"""Digest composition speed: 100,000 digests composed in memory, and the schedule tick end to end.

1. compose_digest alone: 100,000 chats x 3 topics over a pool of 400 releases (4-12 releases a
   topic, realistic titles and summaries, some Chinese, some over the 10-a-topic cap); a tick
   renders each release once (cached), so also 10,000 digests "cold", the cache cleared for each.
2. queue_due_digests end to end on SQLite (a file, WAL): 10,000 due chats x 3 of 20 topics over
   300 matched releases: claim, load, compose, enqueue into the outbox, advance the schedule.

Run: .venv/bin/python -m benchmarks.compose [--chats N] [--db-chats N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert
from sqlmodel import SQLModel, select

from bot.db import create_engine, session_factory
from bot.digest.compose import DigestItem, DigestSection, _fitted_release, compose_digest
from bot.digest.service import queue_due_digests
from bot.models import Chat, Match, OutboxMessage, Release, Subscription, Topic

GOAL_SECONDS = 30.0
NOW = datetime(2026, 11, 28, 0, 0, 30, tzinfo=UTC)

_WORDS = [
    "Customs",
    "seizes",
    "suspected",
    "smuggled",
    "cigarettes",
    "worth",
    "about",
    "million",
    "at",
    "Kwai",
    "Chung",
    "Government",
    "announces",
    "new",
    "measures",
    "national",
    "security",
    "education",
    "week",
    "opens",
    "Typhoon",
    "signal",
    "Observatory",
    "warns",
    "residents",
    "of",
    "heavy",
    "rain",
    "tonight",
    "LegCo",
    "debate",
    "budget",
]
_CJK = "海關檢獲懷疑私煙總值約萬元政府公布新措施國家安全教育周開幕天文台發出暴雨警告"


def _text(rng: random.Random, words: int) -> str:
    if rng.random() < 0.3:
        return "".join(rng.choice(_CJK) for _ in range(words * 2))
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _release_pool(rng: random.Random, size: int) -> list[DigestItem]:
    return [
        DigestItem(
            release_id=n,
            title=_text(rng, rng.randint(6, 14)),
            link=f"https://www.info.gov.hk/gia/general/202611/28/P2026112800{n:03d}.htm",
            summary=_text(rng, rng.randint(20, 40)),
            published_at=NOW - timedelta(minutes=n),
        )
        for n in range(size)
    ]


def bench_compose(chats: int, *, cold: bool = False) -> dict[str, Any]:
    rng = random.Random(7)
    pool = _release_pool(rng, 400)
    labels = [f"Topic {n}" for n in range(50)]
    zone = ZoneInfo("Asia/Hong_Kong")
    digests = []
    for _ in range(chats):
        sections = []
        for label in rng.sample(labels, 3):
            items = rng.sample(pool, rng.randint(4, 12))
            sections.append(DigestSection(label, label.lower(), items, 0))
        digests.append((sections, sum(len(s.items) for s in sections), rng.choice(("en", "zh"))))
    parts = 0
    cpu_started, started = time.process_time(), time.perf_counter()
    for sections, total, language in digests:
        if cold:  # every release rendered afresh, as if no two digests shared one
            _fitted_release.cache_clear()
        parts += len(compose_digest(sections, language=language, tz=zone, now=NOW, total=total))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    what = f"compose_digest x {chats:,} (3 topics x 4-12 of 400 releases)"
    what += ", cold" if cold else ""
    return {"what": what, "seconds": elapsed, "cpu": cpu, "digests": chats, "messages": parts}


async def _seed(url: str, chats: int) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
        rng = random.Random(11)
        topics = [
            {"id": n + 1, "query": f"topic{n}", "label": f"Topic {n}", "created_at": NOW}
            for n in range(20)
        ]
        await conn.execute(insert(Topic), topics)
        releases = [
            {
                "id": n + 1,
                "link": f"https://www.info.gov.hk/gia/general/P{n:06d}.htm",
                "canonical_link": f"https://www.info.gov.hk/gia/general/P{n:06d}.htm",
                "fingerprint": f"{n:064x}",
                "guid": f"P{n:06d}",
                "title": _text(rng, 10),
                "summary": _text(rng, 30),
                "body": "",
                "published_at": NOW - timedelta(minutes=n),
                "content_hash": f"{n:064d}",
                "first_seen_at": NOW - timedelta(minutes=n + 1),
                "updated_at": NOW,
                "announce": True,
            }
            for n in range(300)
        ]
        await conn.execute(insert(Release), releases)
        matches = [
            {
                "release_id": r + 1,
                "topic_id": t,
                "in_title": rng.random() < 0.5,
                "matched_at": NOW - timedelta(minutes=10),  # before the tick's settle margin
            }
            for r in range(300)
            for t in rng.sample(range(1, 21), rng.randint(1, 2))
        ]
        await conn.execute(insert(Match), matches)
        chat_rows = [
            {
                "id": n + 1,
                "telegram_id": 10_000 + n,
                "type": "private",
                "language": "en",
                "timezone": "Asia/Hong_Kong",
                "digest_time": dtime(8, 0),
                "digest_weekday": 0,
                "frequency": "daily",
                "paused": False,
                "active": True,
                "next_digest_at": NOW - timedelta(seconds=30),
                "created_at": NOW - timedelta(days=3),
                "updated_at": NOW,
            }
            for n in range(chats)
        ]
        await conn.execute(insert(Chat), chat_rows)
        subscriptions = [
            {
                "chat_id": n + 1,
                "thread_id": 0,
                "topic_id": t,
                "query_text": f"topic{t - 1}",
                "created_at": NOW - timedelta(days=2),
            }
            for n in range(chats)
            for t in rng.sample(range(1, 21), 3)
        ]
        await conn.execute(insert(Subscription), subscriptions)
    await engine.dispose()


async def _bench_tick(chats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        await _seed(url, chats)
        engine = create_engine(url)
        sessions = session_factory(engine)
        cpu_started, started = time.process_time(), time.perf_counter()
        queued = await queue_due_digests(sessions, NOW)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        again = await queue_due_digests(sessions, NOW)
        async with sessions() as session:
            rows = (await session.exec(select(func.count()).select_from(OutboxMessage))).one()
        await engine.dispose()
    assert again == 0 and rows == queued
    what = f"queue_due_digests, SQLite, {chats:,} due chats x 3 topics"
    return {"what": what, "seconds": elapsed, "cpu": cpu, "digests": chats, "messages": queued}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--db-chats", type=int, default=10_000)
    args = parser.parse_args()
    rows = [
        bench_compose(args.chats),
        bench_compose(args.chats // 10, cold=True),
        asyncio.run(_bench_tick(args.db_chats)),
    ]
    # cpu = this process's CPU seconds (both threads, aiosqlite's included): on a busy machine
    # wall seconds include time spent waiting for a core
    columns = f"{'digests':>9} {'messages':>9} {'seconds':>8} {'cpu s':>7} {'digests/s':>10}"
    print(f"{'measured':<62} {columns}")
    for row in rows:
        rate = row["digests"] / row["seconds"]
        figures = f"{row['digests']:>9,} {row['messages']:>9,} {row['seconds']:>8.2f}"
        figures += f" {row['cpu']:>7.2f} {rate:>10,.0f}"
        print(f"{row['what']:<62} {figures}")
    compose_100k = rows[0]["seconds"] * 100_000 / rows[0]["digests"]
    tick_100k = rows[2]["seconds"] * 100_000 / rows[2]["digests"]
    print(f"goal: 100,000 digests composed in <= {GOAL_SECONDS:.0f} s")
    print(f"  compose_digest, 100,000 digests: {compose_100k:.1f} s")
    print(f"  queue_due_digests on SQLite, projected linearly to 100,000 chats: {tick_100k:.1f} s")


if __name__ == "__main__":
    main()
