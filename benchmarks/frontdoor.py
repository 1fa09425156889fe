"""The front door under load: the whole bot (`serve`, SQLite) against the Bot API double.

Three runs, each on a fresh database with Telegram's limits (1 s per chat, SEND_RATE 25/s):
- slow command: an admin's /addfeed waits on a feed server that stalls `--stall` seconds;
  meanwhile other chats send /help one after another: how long each waits for its reply;
- flood: `--chats` chats send /list within 1 s, the double enforcing 30/s in all: replies
  received, latency from command to reply, 429 answers;
- slow Telegram: `--slow-chats` chats send /list while every send takes 3 s to be answered.

Run: .venv/bin/python -m benchmarks.frontdoor [--chats 200] [--slow-chats 20] [--stall 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass

from aiohttp import web

from benchmarks.telegram import running_bot
from tests.doubles.feed_server import FeedServer, rss
from tests.doubles.telegram_api import BotAPIDouble

ADMIN_ID = 4242
REPLY_TIMEOUT = 120.0


@dataclass
class Row:
    run: str
    asked: int
    answered: int
    latencies: list[float]
    flood_429: int


def _latencies(api: BotAPIDouble, pushed_at: dict[int, float]) -> list[float]:
    """Seconds from each chat's command to the bot's first message to it."""
    out = []
    for chat_id, at in pushed_at.items():
        replies = api.messages_to(chat_id)
        if replies:
            out.append(replies[0].at - at)
    return out


async def slow_command(stall: float, askers: int) -> Row:
    fetched = asyncio.Event()

    async def stalls(request: web.Request) -> web.StreamResponse:
        fetched.set()
        await asyncio.sleep(stall)
        body = rss([{"title": "Late", "link": "https://example.org/late"}])
        return web.Response(body=body, content_type="application/rss+xml")

    async with (
        FeedServer() as feeds,
        BotAPIDouble() as api,
        running_bot(api, admin_ids=[ADMIN_ID], fetch_timeout=stall + 30),
    ):
        url = feeds.route("/stalls.xml", stalls)
        api.push_message(ADMIN_ID, f"/addfeed {url}")
        await asyncio.wait_for(fetched.wait(), 30)
        latencies = []
        for number in range(askers):  # one after another while /addfeed waits
            chat_id = 10_000 + number
            pushed = time.monotonic()
            api.push_message(chat_id, "/help")
            await api.wait_for_message(chat_id, timeout=REPLY_TIMEOUT)
            latencies.append(api.messages_to(chat_id)[0].at - pushed)
        await api.wait_for_message(ADMIN_ID, timeout=REPLY_TIMEOUT)
        return Row(f"/help during a {stall:.0f} s /addfeed", askers, len(latencies), latencies, 0)


async def burst(name: str, chats: int, *, send_latency: float = 0.0) -> Row:
    async with (
        BotAPIDouble(flood_limits=True, global_per_second=30, send_latency=send_latency) as api,
        running_bot(api),
    ):
        pushed_at: dict[int, float] = {}
        spacing = 1.0 / chats  # every command within one second
        for number in range(chats):
            chat_id = 20_000 + number
            pushed_at[chat_id] = time.monotonic()
            api.push_message(chat_id, "/list")
            await asyncio.sleep(spacing)
        with contextlib.suppress(AssertionError):  # replies that never came count as missing
            await api.wait_for(
                lambda: all(api.messages_to(c) for c in pushed_at), timeout=REPLY_TIMEOUT
            )
        await asyncio.sleep(2.0)  # an error reply or a late retry would show now
        latencies = _latencies(api, pushed_at)
        return Row(name, chats, len(latencies), latencies, api.flood_429_count)


async def run(chats: int, slow_chats: int, stall: float) -> list[Row]:
    return [
        await slow_command(stall, askers=10),
        await burst(f"{chats} chats /list, 30/s", chats),
        await burst(f"{slow_chats} chats /list, 3 s sends", slow_chats, send_latency=3.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--slow-chats", type=int, default=20)
    parser.add_argument("--stall", type=float, default=10.0)
    args, _ = parser.parse_known_args()
    rows = asyncio.run(run(args.chats, args.slow_chats, args.stall))
    print(f"{'run':<30} {'replies':>9} {'p50 s':>7} {'max s':>7} {'429s':>5}")
    for row in rows:
        ordered = sorted(row.latencies) or [float("nan")]
        print(
            f"{row.run:<30} {f'{row.answered}/{row.asked}':>9} "
            f"{statistics.median(ordered):>7.2f} {ordered[-1]:>7.2f} {row.flood_429:>5}"
        )


if __name__ == "__main__":
    main()
