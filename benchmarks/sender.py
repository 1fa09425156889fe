"""Sender throughput, flood-limit behaviour and broadcast memory, against the Bot API double.

    .venv/bin/python -m benchmarks.sender [--chats 5000] [--limited 600] [--broadcast 100000]

1. limits off: N messages to N chats with SEND_RATE unbounded; the double runs in its own
   process (one event loop serving both sides is the bottleneck otherwise); SQLite and
   PostgreSQL (skipped if unreachable).
2. Telegram-like flood limits (30/s total, 1/s a chat, 20/min a group) with SEND_RATE=30:
   achieved rate and share of 429 answers (double in-process: 30/s is light work).
3. memory: a subprocess with 100,000 chats runs confirm_broadcast (100,000 outbox rows) and
   sends a 2,000-message slice of it; peak RSS (VmHWM) of that process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from benchmarks.memory import peak_rss_mb
from bot.config import Settings
from bot.db import SessionFactory, create_engine, session_factory
from bot.delivery.broadcast import queue_broadcast
from bot.delivery.outbox import CHAT, OutboxRow, enqueue_many, queue_counts
from bot.delivery.sender import DeliveryLimits, Sender
from bot.delivery.telegram_transport import TelegramTransport
from bot.models import MessageKind, utcnow

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _telegram_bot(base_url: str, token: str, pool: int) -> Any:
    from telegram import Bot
    from telegram.request import HTTPXRequest

    return Bot(token, base_url=base_url, request=HTTPXRequest(connection_pool_size=pool))


async def _fresh_database(url: str) -> tuple[Any, SessionFactory]:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    return engine, session_factory(engine)


async def _add_chats(sessions: SessionFactory, count: int, first_id: int = 10_000) -> list[int]:
    """`count` private chats, inserted in chunks (the benchmark's own memory stays small)."""
    now = utcnow()
    async with sessions() as session:
        for start in range(0, count, 5000):
            rows = [
                {
                    "telegram_id": first_id + n,
                    "type": "private",
                    "language": "en",
                    "timezone": "UTC",
                    "digest_time": now.time().replace(microsecond=0),
                    "digest_weekday": 0,
                    "frequency": "daily",
                    "paused": False,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(start, min(count, start + 5000))
            ]
            await session.exec(insert(CHAT), params=rows)
        await session.commit()
        result = await session.exec(select(CHAT.c.id).order_by(CHAT.c.id))  # type: ignore[call-overload]
        return [row[0] for row in result.all()]


def _start_double_process(*extra: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.sender", "--serve-double", *extra],
        stdin=subprocess.PIPE,  # the double serves until its stdin closes
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    port, token = proc.stdout.readline().split()
    return proc, f"http://127.0.0.1:{port}/bot", token


async def _serve_double(flood: bool) -> None:
    from tests.doubles.telegram_api import BotAPIDouble

    async with BotAPIDouble(flood_limits=flood) as api:
        print(api.port, api.token, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def throughput(url: str, chats: int, **tuning: Any) -> dict[str, object]:
    """Messages/s with the double's limits off and SEND_RATE unbounded."""
    engine, sessions = await _fresh_database(url)
    ids = await _add_chats(sessions, chats)
    async with sessions() as session:
        rows = [
            OutboxRow(chat_id, f"<b>Digest</b> for {chat_id}", MessageKind.digest)
            for chat_id in ids
        ]
        await enqueue_many(session, rows)
        await session.commit()
    proc, base_url, token = _start_double_process()
    try:
        limits = DeliveryLimits(**{"send_rate": 100_000, "concurrency": 12, **tuning})
        bot = _telegram_bot(base_url, token, limits.workers + 4)
        async with bot:
            sender = Sender(sessions, TelegramTransport(bot), Settings(), limits=limits)
            started = time.perf_counter()
            stats = await sender.drain(timeout=300)
            elapsed = time.perf_counter() - started
    finally:
        proc.kill()
        proc.wait()
    counts = await queue_counts(sessions)
    await engine.dispose()
    return {
        "sent": stats.sent,
        "seconds": elapsed,
        "rate": stats.sent / elapsed,
        "unsent": counts["queued"] + counts["sending"],
    }


async def flood_limited(messages: int) -> dict[str, object]:
    """SEND_RATE=30 against Telegram-like limits: achieved rate and share of 429s."""
    from tests.doubles.telegram_api import BotAPIDouble

    with tempfile.TemporaryDirectory() as tmp:
        engine, sessions = await _fresh_database(f"sqlite+aiosqlite:///{tmp}/limited.db")
        ids = await _add_chats(sessions, messages)
        async with sessions() as session:
            await enqueue_many(
                session, [OutboxRow(i, "<i>news</i>", MessageKind.digest) for i in ids]
            )
            await session.commit()
        async with BotAPIDouble(flood_limits=True) as api:
            limits = DeliveryLimits(send_rate=30)
            async with _telegram_bot(api.base_url, api.token, limits.workers + 4) as bot:
                sender = Sender(
                    sessions, TelegramTransport(bot), Settings(send_rate=30), limits=limits
                )
                started = time.perf_counter()
                stats = await sender.drain(timeout=300)
                elapsed = time.perf_counter() - started
            calls = len(api.calls_to("sendMessage"))
            too_many = api.flood_429_count
        await engine.dispose()
    return {
        "sent": stats.sent,
        "seconds": elapsed,
        "rate": stats.sent / elapsed,
        "calls": calls,
        "429": too_many,
        "share_429": too_many / max(1, calls),
    }


async def _broadcast_memory(chats: int, slice_size: int) -> None:
    """Runs in its own process: prints peak RSS (MiB) before, after queueing, after sending."""
    with tempfile.TemporaryDirectory() as tmp:
        engine, sessions = await _fresh_database(f"sqlite+aiosqlite:///{tmp}/broadcast.db")
        await _add_chats(sessions, chats)
        before = peak_rss_mb()
        started = time.perf_counter()
        broadcast = await queue_broadcast(sessions, "<b>Maintenance</b> tonight", created_by=1)
        queued_in = time.perf_counter() - started
        queued = peak_rss_mb()
        proc, base_url, token = _start_double_process()
        try:
            limits = DeliveryLimits(send_rate=100_000, concurrency=12)
            async with _telegram_bot(base_url, token, limits.workers + 4) as bot:
                sender = Sender(sessions, TelegramTransport(bot), Settings(), limits=limits)
                stop = asyncio.Event()
                task = asyncio.create_task(sender.run(stop))
                while sender.stats.sent < slice_size:  # noqa: ASYNC110  (polls a counter)
                    await asyncio.sleep(0.2)
                stop.set()
                await task
        finally:
            proc.kill()
            proc.wait()
        sent = peak_rss_mb()
        print(
            broadcast.total,
            f"{before:.0f}",
            f"{queued:.0f}",
            f"{sent:.0f}",
            f"{queued_in:.1f}",
            sender.stats.sent,
            flush=True,
        )
        await engine.dispose()


def broadcast_memory(chats: int, slice_size: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.sender", "--memory-child", str(chats), str(slice_size)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    ).stdout.split()
    total, before, queued, sent, seconds, sent_count = out[-6:]
    return {
        "total": int(total),
        "rss_chats_mib": before,
        "rss_queued_mib": queued,
        "rss_sent_mib": sent,
        "queue_seconds": seconds,
        "sent": int(sent_count),
    }


async def _pg_admin(sql: str) -> None:
    """One statement on the maintenance database (CREATE/DROP DATABASE need autocommit)."""
    engine = create_engine(PG_URL)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def _pg_throughput(chats: int) -> dict[str, object] | None:
    """throughput() on a database of its own, dropped afterwards; None if PostgreSQL is down."""
    name = f"pd_bench_sender_{os.getpid()}"
    try:
        await _pg_admin(f'CREATE DATABASE "{name}"')
    except Exception:
        return None
    try:
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        return await throughput(url, chats)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    """The table; `python -m benchmarks` calls it without arguments (the defaults)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=5000)
    parser.add_argument("--limited", type=int, default=600)
    parser.add_argument("--broadcast", type=int, default=100_000)
    parser.add_argument("--serve-double", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flood", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv or [])
    if args.serve_double:
        asyncio.run(_serve_double(args.flood))
        return
    if args.memory_child:
        asyncio.run(_broadcast_memory(*args.memory_child))
        return

    print(f"{'scenario':<52} {'result':>40}")
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(throughput(f"sqlite+aiosqlite:///{tmp}/bench.db", args.chats))
        print(
            f"{f'limits off, SQLite, {args.chats} chats (goal >= 500/s)':<52} "
            f"{result['rate']:>25.0f} msg/s ({result['sent']} sent)"
        )
    pg_result = asyncio.run(_pg_throughput(args.chats))
    if pg_result is not None:
        result = pg_result
        print(
            f"{f'limits off, PostgreSQL, {args.chats} chats (goal >= 500/s)':<52} "
            f"{result['rate']:>25.0f} msg/s ({result['sent']} sent)"
        )
    limited = flood_limited(args.limited)
    result = asyncio.run(limited)
    print(
        f"{f'flood limits 30/s, SEND_RATE=30, {args.limited} chats':<52} "
        f"{result['rate']:>15.1f} msg/s = {float(result['rate']) / 30:.0%} of 30/s"
    )
    print(
        f"{'  share of 429 answers (goal <= 1%)':<52} "
        f"{result['share_429']:>25.2%} ({result['429']} of {result['calls']})"
    )
    memory = broadcast_memory(args.broadcast, min(2000, args.broadcast))
    label = f"broadcast to {memory['total']} chats: peak RSS (goal < 300 MB)"
    print(
        f"{label:<52} "
        f"{memory['rss_sent_mib']:>20} MiB (chats {memory['rss_chats_mib']}, "
        f"queued {memory['rss_queued_mib']})"
    )
    print(f"{'  confirm_broadcast (INSERT … SELECT) took':<52} {memory['queue_seconds']:>25} s")


if __name__ == "__main__":
    main(sys.argv[1:])
