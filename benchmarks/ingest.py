"""Feed ingest speed: releases stored per second (loopback fetch + parse + store), beside
feedparser's raw parse rate on the same bytes (the ceiling), on SQLite and PostgreSQL;
and the peak memory of ingesting a 10 MB feed.

    .venv/bin/python -m benchmarks.ingest

The input is one big RSS document made of the HK government (English, Chinese) and
Guardian fixture items, replicated with unique guids and links to about 5,000 items.
`bot.pipeline.on_releases_stored` is replaced by a no-op so only ingest is measured.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import feedparser
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel, func, select

import bot.pipeline
from benchmarks.memory import peak_rss_mb
from bot.config import Settings
from bot.db import SessionFactory, create_engine, session_factory
from bot.feeds.poller import poll_all_feeds, sync_configured_feeds
from bot.models import Release
from tests.conftest import FIXTURES
from tests.doubles.feed_server import FeedServer

ITEMS = 5000
ROUNDS = 2
SOURCES = (
    "hk-gia-general-en-seed.xml",
    "hk-gia-general-zh-2026-10-05-subset.xml",
    "guardian-us-rss2-large.xml",
)
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def fixtures_dir() -> Path:
    return FIXTURES


def build_big_feed(items: int = ITEMS, max_bytes: int | None = None) -> bytes:
    """One RSS document of `items` fixture items, unique guids and links (at most max_bytes)."""
    templates: list[str] = []
    for name in SOURCES:
        text = (fixtures_dir() / name).read_text("utf-8")
        templates += re.findall(r"<item>.*?</item>", text, re.S)
    head = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<channel><title>bench</title><link>https://bench.example/</link><description>b</description>"
    )
    tail = "</channel></rss>"
    parts, size = [head], len(head) + len(tail)
    for n in range(items):
        item = templates[n % len(templates)]
        item = re.sub(
            r"<guid[^>]*>(.*?)</guid>",
            lambda m, n=n: f"<guid>{m.group(1).strip()}?n={n}</guid>",
            item,
            flags=re.S,
        )
        item = re.sub(
            r"<link>(.*?)</link>",
            lambda m, n=n: f"<link>{m.group(1).strip()}?n={n}</link>",
            item,
            flags=re.S,
        )
        encoded = len(item.encode())
        if max_bytes is not None and size + encoded > max_bytes:
            break
        parts.append(item)
        size += encoded
    parts.append(tail)
    return "".join(parts).encode("utf-8")


async def _no_matching(
    sessions: SessionFactory,
    new_ids: list[int],
    updated_ids: list[int],
    *,
    announce: bool,
    **_: object,
) -> None:
    return None


def raw_parse(body: bytes) -> tuple[int, float, float]:
    """feedparser.parse with its defaults: (entries, wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    parsed = feedparser.parse(
        io.BytesIO(body), response_headers={"content-type": "application/rss+xml"}
    )
    return len(parsed.entries), time.perf_counter() - wall, time.process_time() - cpu


async def ingest_once(database_url: str, body: bytes) -> tuple[int, float, float]:
    """Serves `body` on loopback, polls it into a fresh database: (stored, wall s, CPU s)."""
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    sessions = session_factory(engine)
    settings = Settings(
        _env_file=None, feeds=[], fetch_timeout=300, max_feed_bytes=64 * 1024 * 1024
    )  # type: ignore[call-arg]
    try:
        async with FeedServer() as server:
            url = server.add_feed("/big.xml", body)
            await sync_configured_feeds(sessions, [url])
            wall, cpu = time.perf_counter(), time.process_time()
            (report,) = await poll_all_feeds(sessions, settings)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if report.status != "ok":
            raise RuntimeError(f"ingest failed: {report.error}")
        async with sessions() as session:
            stored = (await session.exec(select(func.count()).select_from(Release))).one()
        return int(stored), wall, cpu
    finally:
        await engine.dispose()


@asynccontextmanager
async def scratch_postgres() -> AsyncIterator[str]:
    import asyncpg

    admin = make_url(PG_ADMIN_URL)
    name = f"pd_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password,
        database=admin.database, timeout=5,
    )  # fmt: skip
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def memory_child(feed_path: str) -> None:
    """In a fresh process: ingest the feed at `feed_path` into SQLite, print peak RSS as JSON."""
    body = Path(feed_path).read_bytes()
    baseline = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        stored, seconds, _cpu = asyncio.run(ingest_once(f"sqlite+aiosqlite:///{tmp}/mem.db", body))
    peak = peak_rss_mb()
    print(
        json.dumps({"stored": stored, "seconds": seconds, "baseline_mb": baseline, "peak_mb": peak})
    )


def main() -> None:
    bot.pipeline.on_releases_stored = _no_matching  # type: ignore[assignment]
    body = build_big_feed()
    print(
        f"input: {ITEMS} items, {len(body) / 1e6:.1f} MB "
        "(HK en/zh + Guardian items, unique guids/links)"
    )

    async def on_postgres() -> tuple[int, float, float]:
        async with scratch_postgres() as url:
            return await ingest_once(url, body)

    def on_sqlite() -> tuple[int, float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(ingest_once(f"sqlite+aiosqlite:///{tmp}/bench.db", body))

    runs: dict[str, list[tuple[int, float, float]]] = {"raw": [], "sqlite": [], "postgres": []}
    notes: list[str] = []
    # Interleaved rounds, best of each: other load on the machine hits every contender alike.
    for _ in range(ROUNDS):
        runs["raw"].append(raw_parse(body))
        runs["sqlite"].append(on_sqlite())
        if not notes:
            try:
                runs["postgres"].append(asyncio.run(on_postgres()))
            except Exception as exc:  # unreachable server, refused login, missing asyncpg
                notes.append(
                    f"PostgreSQL skipped: {PG_ADMIN_URL} unreachable ({type(exc).__name__}: {exc})"
                )

    entries, raw_wall, _ = min(runs["raw"], key=lambda r: r[1])
    raw_rate = entries / raw_wall
    raw_cpu_rate = entries / min(r[2] for r in runs["raw"])
    header = ("what", "items", "wall s", "CPU s", "items/s", "% of raw", "% of raw by CPU")
    rows = [header]
    labels = {
        "raw": "feedparser.parse (raw, the ceiling)",
        "sqlite": "ingest -> SQLite",
        "postgres": "ingest -> PostgreSQL",
    }
    for key, label in labels.items():
        if not runs[key]:
            continue
        stored, wall, _ = min(runs[key], key=lambda r: r[1])
        cpu = min(r[2] for r in runs[key])
        rate = stored / wall
        rows.append(
            (
                label,
                str(stored),
                f"{wall:.2f}",
                f"{cpu:.2f}",
                f"{rate:,.0f}",
                f"{rate / raw_rate:.0%}",
                f"{stored / cpu / raw_cpu_rate:.0%}",
            )
        )

    print()
    print(
        f"Feed ingest, best of {ROUNDS}: loopback fetch + parse + normalise + store "
        "(on_releases_stored = no-op)"
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in [rows[0], tuple("-" * w for w in widths), *rows[1:]]:
        print(
            "  ".join(
                cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
        )
    for note in notes:
        print(note)
    print("goal: ingest >= 70% of raw. Wall time is best of the rounds; CPU time is this")
    print("process's own (a loaded machine skews wall time; PostgreSQL's server CPU is not in it)")

    with tempfile.NamedTemporaryFile(suffix=".xml", delete=False) as tmp_feed:
        ten_mb = build_big_feed(items=100_000, max_bytes=10 * 1024 * 1024)
        tmp_feed.write(ten_mb)
    try:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.ingest", "--memory", tmp_feed.name],
            capture_output=True, text=True, check=True, timeout=600,
        )  # fmt: skip
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        print()
        print(
            f"Peak memory ingesting a {len(ten_mb) / 1024 / 1024:.1f} MB feed "
            f"({figures['stored']} items, SQLite):"
        )
        print(
            f"  process peak RSS {figures['peak_mb']:.0f} MB "
            f"(interpreter + libraries before: {figures['baseline_mb']:.0f} MB)"
        )
        print("  goal: < 200 MB")
    finally:
        os.unlink(tmp_feed.name)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory":
        bot.pipeline.on_releases_stored = _no_matching  # type: ignore[assignment]
        memory_child(sys.argv[2])
    else:
        main()
