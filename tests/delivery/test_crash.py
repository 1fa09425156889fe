"""Crash safety and several senders: kill -9 mid-broadcast loses nothing; SKIP LOCKED shares."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from sqlmodel import SQLModel

from bot.config import Settings
from bot.db import create_engine, migrate, session_factory
from bot.delivery.broadcast import broadcast_tally, queue_broadcast
from bot.delivery.outbox import queue_counts
from bot.delivery.sender import Sender
from bot.delivery.telegram_transport import TelegramTransport
from tests.delivery.helpers import add_chats, limits, make_bot, queue_text
from tests.doubles.telegram_api import BotAPIDouble

ROOT = Path(__file__).resolve().parents[2]


async def test_kill_9_mid_broadcast_loses_nothing_and_resends_at_most_the_in_flight(
    db_url, tmp_path
):
    engine = create_engine(db_url)
    await migrate(engine)  # the sender process migrates too: it must find nothing to do
    sessions = session_factory(engine)
    await add_chats(sessions, list(range(3000, 3300)))
    broadcast = await queue_broadcast(sessions, "<b>Announcement</b>", created_by=1)

    async with BotAPIDouble(latency=0.02) as api:
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "BOT_TOKEN": api.token,
            "TELEGRAM_API_URL": api.base_url,
            "SEND_RATE": "300",
            "SEND_LEASE": "2",
            "LOG_LEVEL": "WARNING",
        }
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--role",
            "sender",
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT), "HTTP_PORT": "0", "FEEDS": ""},
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            await api.wait_for(lambda: len(api.sent) >= 100, timeout=30)
        finally:
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
        in_flight = (await queue_counts(sessions))["sending"]
        sent_before_restart = len(api.sent)
        assert sent_before_restart < 300, "the kill should land mid-broadcast"

        # a new sender, after the dead one's leases ran out
        await asyncio.sleep(2.1)
        async with make_bot(api) as bot:
            restarted = Sender(
                sessions, TelegramTransport(bot), Settings(), limits=limits(lease=2.0)
            )
            await restarted.drain(timeout=60)

    received = Counter(m.chat_id for m in api.sent)
    assert set(received) == set(range(3000, 3300))  # nobody missed it
    duplicates = sum(received.values()) - 300
    assert duplicates <= in_flight  # at most what was in flight at the kill went twice
    tally = await broadcast_tally(sessions, broadcast.id)
    assert tally.delivered == 300 and tally.pending == 0
    await engine.dispose()


async def test_two_senders_on_postgresql_share_one_queue_and_send_each_message_once(pg_url):
    engine = create_engine(pg_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    sessions = session_factory(engine)
    chats = await add_chats(sessions, list(range(6000, 6400)))
    await queue_text(sessions, chats, lambda c: f"for {c.telegram_id}")
    await queue_text(sessions, chats[:100], lambda c: f"second for {c.telegram_id}")

    async with BotAPIDouble(latency=0.005) as api, make_bot(api) as one, make_bot(api) as two:
        senders = [
            Sender(
                sessions,
                TelegramTransport(bot),
                Settings(),
                limits=limits(send_rate=300, private_interval=0.3),
            )
            for bot in (one, two)
        ]
        stats = await asyncio.gather(*(s.drain(timeout=60) for s in senders))

    texts = Counter((m.chat_id, m.text) for m in api.sent)
    assert len(texts) == 500 and set(texts.values()) == {1}
    assert all(s.sent > 50 for s in stats)  # both did a share of the work
    for chat_id in range(6000, 6100):  # a chat's two messages went in order, paced
        first, second = api.messages_to(chat_id)
        assert first.text.startswith("for") and second.at - first.at >= 0.25
    await engine.dispose()


async def test_two_senders_on_one_sqlite_file_send_each_message_once(sqlite_url):
    # `press-digest send-digests --now` draining while `run` sends: two processes, one file
    engines = [create_engine(sqlite_url) for _ in range(2)]
    async with engines[0].begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    sessions = [session_factory(engine) for engine in engines]
    chats = await add_chats(sessions[0], list(range(7000, 7200)))
    await queue_text(sessions[0], chats, lambda c: f"for {c.telegram_id}")

    async with BotAPIDouble(latency=0.005) as api, make_bot(api) as one, make_bot(api) as two:
        senders = [
            Sender(s, TelegramTransport(bot), Settings(), limits=limits(send_rate=300))
            for s, bot in zip(sessions, (one, two), strict=True)
        ]
        await asyncio.gather(*(s.drain(timeout=60) for s in senders))

    texts = Counter((m.chat_id, m.text) for m in api.sent)
    assert len(texts) == 200 and set(texts.values()) == {1}
    for engine in engines:
        await engine.dispose()
