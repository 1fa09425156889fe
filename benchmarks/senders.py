"""Several sender processes on one PostgreSQL: `press-digest run --role sender`, really started.

    .venv/bin/python -m benchmarks.senders [--messages 4000] [--paid 3000] [--recovery 1500]

1. limits off: N messages to N chats, SEND_RATE unbounded, the double in its own process;
   1, 2 and 4 sender processes; rate from the first to the last `sent_at` (start-up apart).
2. paid broadcasts: the double with Telegram's limits (30/s free, 1000/s paid),
   PAID_BROADCAST=true, two senders; the achieved broadcast rate against PAID_SEND_RATE=1000.
3. recovery: two senders, one killed with SIGKILL mid-way; how long until the last message
   it held had gone out (through the other sender, once its lease ran out).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from benchmarks.sender import PG_URL, _add_chats, _pg_admin, _start_double_process
from bot.db import SessionFactory, create_engine, migrate, session_factory
from bot.delivery.broadcast import queue_broadcast
from bot.delivery.outbox import OUTBOX, OutboxRow, enqueue_many, fetch_rows
from bot.models import MessageKind, MessageState

ROOT = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def _database() -> AsyncIterator[tuple[str, SessionFactory]]:
    name = f"pd_bench_senders_{os.getpid()}"
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        await migrate(engine)
        yield url, session_factory(engine)
    finally:
        await engine.dispose()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(url: str, base_url: str, token: str, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in {"FEEDS", "BOT_TOKEN"}}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=url,
        BOT_TOKEN=token,
        TELEGRAM_API_URL=base_url,
        HTTP_PORT="0",
        FEEDS="",
        LOG_LEVEL="WARNING",
        **values,
    )
    return env


async def _start_senders(count: int, env: dict[str, str]) -> list[asyncio.subprocess.Process]:
    command = [sys.executable, "-m", "bot", "run", "--role", "sender"]
    return [await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT) for _ in range(count)]


async def _stop(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    await asyncio.gather(*(p.wait() for p in processes))


async def _unsent(sessions: SessionFactory) -> int:
    async with sessions() as session:
        stmt = select(func.count()).where(OUTBOX.c.state != MessageState.sent.value)
        return int((await fetch_rows(session, stmt))[0][0])


async def _wait_sent(sessions: SessionFactory, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while await _unsent(sessions) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


async def _sent_span(sessions: SessionFactory) -> tuple[int, float]:
    """Messages sent, and seconds from the first to the last."""
    async with sessions() as session:
        stmt = select(func.count(), func.min(OUTBOX.c.sent_at), func.max(OUTBOX.c.sent_at)).where(
            OUTBOX.c.state == MessageState.sent.value
        )
        count, first, last = (await fetch_rows(session, stmt))[0]
    return int(count), (last - first).total_seconds() if count > 1 else 0.0


async def _queue_digests(sessions: SessionFactory, messages: int) -> None:
    ids = await _add_chats(sessions, messages)
    async with sessions() as session:
        await enqueue_many(
            session, [OutboxRow(i, f"<b>Digest</b> for {i}", MessageKind.digest) for i in ids]
        )
        await session.commit()


async def unlimited(processes: int, messages: int) -> dict[str, Any]:
    async with _database() as (url, sessions):
        await _queue_digests(sessions, messages)
        double, base_url, token = _start_double_process()
        try:
            env = _env(url, base_url, token, SEND_RATE="100000")
            senders = await _start_senders(processes, env)
            try:
                await _wait_sent(sessions, 300)
            finally:
                await _stop(senders)
        finally:
            double.kill()
            double.wait()
        sent, span = await _sent_span(sessions)
    return {"processes": processes, "sent": sent, "rate": sent / span if span else 0.0}


async def paid(messages: int) -> dict[str, Any]:
    async with _database() as (url, sessions):
        await _add_chats(sessions, messages)
        await queue_broadcast(sessions, "<b>Announcement</b>", created_by=None)
        double, base_url, token = _start_double_process("--flood")
        try:
            env = _env(url, base_url, token, PAID_BROADCAST="true", PAID_SEND_RATE="1000")
            senders = await _start_senders(2, env)
            try:
                await _wait_sent(sessions, 300)
            finally:
                await _stop(senders)
        finally:
            double.kill()
            double.wait()
        sent, span = await _sent_span(sessions)
    return {"sent": sent, "rate": sent / span if span else 0.0}


async def recovery(messages: int) -> dict[str, Any]:
    async with _database() as (url, sessions):
        await _queue_digests(sessions, messages)
        double, base_url, token = _start_double_process()
        try:
            doomed, survivor = await _start_senders(2, _env(url, base_url, token, SEND_RATE="100"))
            try:
                while await _unsent(sessions) > messages * 0.7:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                async with sessions() as session:
                    rows = await fetch_rows(
                        session,
                        select(OUTBOX.c.id).where(OUTBOX.c.state == MessageState.sending.value),
                    )
                held = [row[0] for row in rows]
                doomed.send_signal(signal.SIGKILL)
                await doomed.wait()
                killed_at = datetime.now().astimezone()
                await _wait_sent(sessions, 120)
            finally:
                await _stop([doomed, survivor])
        finally:
            double.kill()
            double.wait()
        async with sessions() as session:
            last = (
                await fetch_rows(
                    session, select(func.max(OUTBOX.c.sent_at)).where(OUTBOX.c.id.in_(held))
                )
            )[0][0]
    return {"held": len(held), "seconds": (last - killed_at).total_seconds() if last else None}


def _row(label: str, result: str) -> None:
    print(f"{label:<58} {result:>22}", flush=True)


async def _run(args: argparse.Namespace) -> None:
    _row("scenario", "result")
    one = None
    for count in (1, 2, 4):
        got = await unlimited(count, args.messages)
        one = one or got["rate"]
        label = f"{count} sender(s), limits off, {got['sent']} messages"
        _row(label, f"{got['rate']:.0f} msg/s {got['rate'] / one:.2f}x")
    got = await paid(args.paid)
    label = f"paid broadcast to {got['sent']} chats, 2 senders (goal 1000/s)"
    _row(label, f"{got['rate']:.0f} msg/s {got['rate'] / 10:.0f}%")
    got = await recovery(args.recovery)
    shown = f"{got['seconds']:.1f} s" if got["seconds"] is not None else "n/a"
    _row(f"SIGKILL of 1 of 2 senders: the {got['held']} claims out again in", shown)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--paid", type=int, default=3000)
    parser.add_argument("--recovery", type=int, default=1500)
    asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
