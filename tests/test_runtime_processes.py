"""Roles as real processes on one PostgreSQL: `press-digest run --role ...`, SIGKILL included."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import func, select

from bot.db import SessionFactory, create_engine, migrate, session_factory
from bot.delivery.outbox import queue_counts
from bot.models import MessageKind, OutboxMessage
from tests.delivery.helpers import add_chats, queue_text
from tests.digest.test_service import World
from tests.doubles.feed_server import FeedServer, rss
from tests.doubles.telegram_api import BotAPIDouble

ROOT = Path(__file__).resolve().parents[1]


def environment(db_url: str, api: BotAPIDouble | None, **values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in {"BOT_TOKEN", "TELEGRAM_API_URL", "DATABASE_URL", "FEEDS"}
    }
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=db_url,
        BOT_TOKEN=api.token if api else "123456:TEST-token-abcdefghijklmnopqrstuvwxyz",
        TELEGRAM_API_URL=api.base_url if api else "http://127.0.0.1:9/bot",
        HTTP_PORT="0",  # tests run side by side: no fixed port
        FEEDS="",
        LOG_LEVEL="WARNING",
    )
    env.update(values)
    return env


@asynccontextmanager
async def processes(
    role: str, count: int, env: dict[str, str], cwd: Path
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """`count` processes of `press-digest run --role ROLE`, SIGTERMed (or already killed) after."""
    started = []
    for n in range(count):
        log = (cwd / f"{role}-{n}.log").open("wb")
        started.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--role",
                role,
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=log,
            )
        )
    try:
        yield started
    finally:
        for process in started:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            await asyncio.wait_for(process.wait(), 15)


async def fresh_database(url: str) -> tuple[SessionFactory, object]:
    engine = create_engine(url)
    await migrate(engine)
    return session_factory(engine), engine


def busiest_second(times: Iterable[float]) -> int:
    """The most messages inside any one-second window."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_two_senders_share_send_rate_and_send_each_message_once(
    pg_url: str, tmp_path: Path
) -> None:
    sessions, engine = await fresh_database(pg_url)
    chats = await add_chats(sessions, list(range(10_000, 10_300)))
    await queue_text(sessions, chats, lambda c: f"for {c.telegram_id}")
    # the double refuses more than 40 a second; SEND_RATE=40 is set once, for both
    async with BotAPIDouble(flood_limits=True, global_per_second=40, chat_per_second=5) as api:
        env = environment(pg_url, api, SEND_RATE="40")
        async with processes("sender", 2, env, tmp_path):
            await api.wait_for(lambda: len(api.sent) >= 300, timeout=60)
            await asyncio.sleep(0.5)  # a duplicate would come now

    received = Counter(m.chat_id for m in api.sent)
    assert set(received) == set(range(10_000, 10_300)) and set(received.values()) == {1}
    assert api.flood_429_count == 0  # the double's 40 a second was never exceeded
    times = sorted(m.at for m in api.sent)
    assert 299 / (times[-1] - times[0]) <= 40 * 1.02  # together, not 40 each
    # slots are 25 ms apart for the two together; a request's own jitter may bunch two
    assert busiest_second(times) <= 42
    assert (await queue_counts(sessions))["sent"] == 300
    await engine.dispose()  # type: ignore[attr-defined]


async def test_a_sender_killed_with_sigkill_gives_its_claims_back_within_45_seconds(
    pg_url: str, tmp_path: Path
) -> None:
    sessions, engine = await fresh_database(pg_url)
    chats = await add_chats(sessions, list(range(20_000, 20_400)))
    await queue_text(sessions, chats, lambda c: f"for {c.telegram_id}")
    async with BotAPIDouble(latency=0.01) as api:
        env = environment(pg_url, api, SEND_RATE="40")  # default SEND_LEASE
        async with processes("sender", 2, env, tmp_path) as (doomed, survivor):
            await api.wait_for(lambda: len(api.sent) >= 80, timeout=60)
            doomed.send_signal(signal.SIGKILL)
            await doomed.wait()
            killed_at = time.monotonic()
            held = (await queue_counts(sessions))["sending"]
            await api.wait_for(lambda: len({m.chat_id for m in api.sent}) >= 400, timeout=60)
            recovered_in = time.monotonic() - killed_at
            assert survivor.returncode is None

    assert held > 0, "the kill should leave claims behind"
    assert recovered_in < 45
    received = Counter(m.chat_id for m in api.sent)
    assert set(received) == set(range(20_000, 20_400))
    assert sum(received.values()) - 400 <= held  # at most what the dead one had in flight
    await engine.dispose()  # type: ignore[attr-defined]


async def test_two_pollers_never_fetch_one_feed_at_once(pg_url: str, tmp_path: Path) -> None:
    _, engine = await fresh_database(pg_url)
    async with FeedServer() as feeds:
        urls = [
            feeds.add_slow(f"/feed{n}.xml", rss([{"title": f"Release {n}"}]), delay=0.5)
            for n in range(6)
        ]
        env = environment(pg_url, None, FEEDS=",".join(urls))
        async with processes("poller", 2, env, tmp_path):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if all(feeds.requests_for(f"/feed{n}.xml") for n in range(6)):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)  # a second fetch of a feed would come now
        fetches = [len(feeds.requests_for(f"/feed{n}.xml")) for n in range(6)]
    assert fetches == [1] * 6
    await engine.dispose()  # type: ignore[attr-defined]


async def test_two_schedulers_never_queue_one_digest_twice(pg_url: str, tmp_path: Path) -> None:
    sessions, engine = await fresh_database(pg_url)
    world = World(sessions)
    customs = await world.topic("customs")
    for _ in range(40):
        await world.follow(await world.chat(), customs)
    await world.release("Customs seizes cigarettes", customs)
    env = environment(pg_url, None)
    async with processes("scheduler", 2, env, tmp_path):
        for _ in range(150):
            if await digests_queued(sessions) >= 40:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # both schedulers have ticked by now (first tick at 2 s)
    per_chat = Counter(m.chat_id for m in await world.outbox() if m.kind == MessageKind.digest)
    assert len(per_chat) == 40 and set(per_chat.values()) == {1}
    await engine.dispose()  # type: ignore[attr-defined]


async def digests_queued(sessions: SessionFactory) -> int:
    async with sessions() as session:
        stmt = select(func.count()).where(OutboxMessage.kind == MessageKind.digest)  # type: ignore[arg-type]
        return int((await session.exec(stmt)).one()[0])  # type: ignore[call-overload]
