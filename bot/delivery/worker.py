"""A sender on its own: `python -m bot.delivery.worker [--lease S] [--concurrency N]`.

Reads DATABASE_URL, BOT_TOKEN, TELEGRAM_API_URL and SEND_RATE like every command, sends the
outbox until SIGINT/SIGTERM. Run several on PostgreSQL to share one queue (each with
SEND_RATE = Telegram's limit / number of workers). Prints "sender ready" once it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from bot.config import load_settings
from bot.db import open_database
from bot.delivery.cli import build_bot
from bot.delivery.sender import DeliveryLimits, Sender
from bot.logging import setup_logging


async def run_worker(lease: float, concurrency: int, backoff_base: float) -> None:
    settings = load_settings()
    setup_logging(settings.log_level, settings)
    limits = DeliveryLimits.from_settings(
        settings, lease=lease, concurrency=concurrency, backoff_base=backoff_base
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_database(settings.database_url) as (_, sessions):
        bot = build_bot(settings, limits)
        async with bot:
            print("sender ready", flush=True)
            await Sender(sessions, bot, settings, limits=limits).run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.delivery.worker", description=__doc__)
    parser.add_argument("--lease", type=float, default=DeliveryLimits.lease, help="claim lease, s")
    parser.add_argument("--concurrency", type=int, default=0, help="parallel requests")
    parser.add_argument("--backoff-base", type=float, default=DeliveryLimits.backoff_base)
    args = parser.parse_args(argv)
    asyncio.run(run_worker(args.lease, args.concurrency, args.backoff_base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
