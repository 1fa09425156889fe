"""Command handling speed: the whole bot (polling, handlers, SQLite) against the Bot API double.

Two runs on a fresh SQLite database:
- one at a time: push a command, wait for its reply, next (the latency a person sees);
- burst: every command pushed at once, time until the last reply (updates per second).

Commands are a mix a real audience sends: /start, /subscribe <topic>, /list, /time, /search.

Run: .venv/bin/python -m benchmarks.telegram [--chats 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel

from bot.config import Settings
from bot.db import SessionFactory, create_engine, session_factory
from bot.runtime import serve
from tests.doubles.telegram_api import BotAPIDouble

TOPICS = ("customs", "typhoon", '"national security"', "e-commerce", "lighthouse", "harbour")


def commands_for(chat_number: int) -> list[str]:
    topic = TOPICS[chat_number % len(TOPICS)]
    return [
        "/start",
        f"/subscribe {topic}",
        "/list",
        f"/time {7 + chat_number % 3}:30",
        f"/search {topic}",
    ]


@contextlib.asynccontextmanager
async def running_bot(api: BotAPIDouble, **settings: Any) -> AsyncIterator[SessionFactory]:
    """The whole bot (`serve`) on a fresh SQLite database, talking to `api`, until the end."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
        sessions = session_factory(engine)
        config = Settings(
            _env_file=None,
            bot_token=api.token,
            telegram_api_url=api.base_url,
            database_url=url,
            feeds=[],
            **settings,
        )
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(
            serve(
                config,
                sessions,
                stop,
                poll_timeout=1,
                poll_tick=3600,
                digest_tick=3600,
                started=started,
            )
        )
        await asyncio.wait_for(started.wait(), 30)
        try:
            yield sessions
        finally:
            stop.set()
            await task
            await engine.dispose()


async def run(chats: int) -> list[tuple[str, int, float, float, float, float]]:
    rows = []
    async with BotAPIDouble() as api, running_bot(api):
        # one at a time
        latencies: list[float] = []
        begin = time.perf_counter()
        for number in range(chats):
            chat_id = 10_000 + number
            for command in commands_for(number):
                before = len(api.messages_to(chat_id))
                sent = time.perf_counter()
                api.push_message(chat_id, command)
                await api.wait_for_message(chat_id, count=before + 1, timeout=30)
                latencies.append(time.perf_counter() - sent)
        elapsed = time.perf_counter() - begin
        rows.append(("one at a time", len(latencies), elapsed, *_percentiles(latencies)))

        # burst
        total_before = len(api.sent)
        pushed = 0
        begin = time.perf_counter()
        for number in range(chats):
            for command in commands_for(number):
                api.push_message(20_000 + number, command)
                pushed += 1
        await api.wait_for(lambda: len(api.sent) - total_before >= pushed, timeout=600)
        elapsed = time.perf_counter() - begin
        rows.append(("burst", pushed, elapsed, elapsed / pushed, float("nan"), float("nan")))
    return rows


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return statistics.mean(ordered), statistics.median(ordered), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=100)
    args, _ = parser.parse_known_args()
    rows = asyncio.run(run(args.chats))
    print(
        f"{'run':<14} {'commands':>8} {'seconds':>8} {'per s':>7} "
        f"{'mean ms':>8} {'p50 ms':>7} {'p95 ms':>7}"
    )
    for name, count, elapsed, mean, p50, p95 in rows:
        print(
            f"{name:<14} {count:>8} {elapsed:>8.2f} {count / elapsed:>7.1f} {mean * 1000:>8.1f} "
            f"{p50 * 1000:>7.1f} {p95 * 1000:>7.1f}"
        )


if __name__ == "__main__":
    main()
