"""`press-digest send-digests`: queue the digests that are due, then send the outbox empty."""

from __future__ import annotations

from telegram import Bot
from telegram.error import InvalidToken
from telegram.request import HTTPXRequest

from bot.config import ConfigError, Settings
from bot.db import SessionFactory
from bot.delivery.outbox import count_unfinished
from bot.delivery.sender import DeliveryLimits, Sender

# a CLI run should end: after this, what is still queued (long backoffs) waits for `run`
DRAIN_TIMEOUT = 600.0


def build_bot(settings: Settings, limits: DeliveryLimits) -> Bot:
    """A PTB Bot for `settings`, with enough connections for the sender's concurrency."""
    request = HTTPXRequest(connection_pool_size=limits.workers + 4, pool_timeout=10.0)
    return Bot(token=settings.token, base_url=settings.telegram_api_url, request=request)


async def send_digests(sessions: SessionFactory, settings: Settings, *, force: bool) -> str:
    """Queues due digests (every active chat with `force`), sends the outbox; one-line summary."""
    from bot.digest.service import queue_due_digests

    limits = DeliveryLimits.from_settings(settings)
    bot = build_bot(settings, limits)  # ConfigError (exit 2) when BOT_TOKEN is missing
    queued = await queue_due_digests(sessions, force=force)
    try:
        await bot.initialize()
    except InvalidToken:  # PTB's message would show the token
        raise ConfigError("BOT_TOKEN was rejected by Telegram: check it with @BotFather") from None
    try:
        stats = await Sender(sessions, bot, settings, limits=limits).drain(timeout=DRAIN_TIMEOUT)
    finally:
        await bot.shutdown()
    summary = f"queued {queued}, sent {stats.sent}, blocked {stats.blocked}, failed {stats.failed}"
    left = await count_unfinished(sessions)
    return summary + (f" ({left} still queued for a retry)" if left else "")
