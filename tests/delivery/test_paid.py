"""PAID_BROADCAST: broadcasts as paid broadcasts at PAID_SEND_RATE, digests on the free limits."""

from __future__ import annotations

from bot.config import Settings
from bot.delivery.broadcast import broadcast_tally, queue_broadcast
from bot.delivery.limits import DeliveryLimits
from bot.delivery.sender import Sender
from bot.delivery.telegram_transport import TelegramTransport
from bot.models import MessageKind
from tests.delivery.helpers import add_chats, limits, make_bot, queue_text
from tests.doubles.telegram_api import BotAPIDouble


def test_paid_settings_reach_the_limits() -> None:
    settings = Settings(paid_broadcast=True, paid_send_rate=500, send_rate=20)
    got = DeliveryLimits.from_settings(settings)
    assert (got.paid_broadcast, got.paid_send_rate, got.send_rate) == (True, 500.0, 20.0)
    assert DeliveryLimits.from_settings(Settings()).paid_broadcast is False


async def test_paid_broadcasts_go_past_the_free_limit_and_digests_stay_free(sessions) -> None:
    chats = await add_chats(sessions, list(range(50_000, 50_300)))
    broadcast = await queue_broadcast(sessions, "<b>News</b>", created_by=1)
    await queue_text(sessions, chats[:20], "your digest", kind=MessageKind.digest)
    # Telegram's limits: 30 a second free, 1000 a second paid
    async with BotAPIDouble(flood_limits=True, chat_per_second=100) as api, make_bot(api) as bot:
        paid = limits(send_rate=25, paid_broadcast=True, paid_send_rate=1000, private_interval=0)
        await Sender(sessions, TelegramTransport(bot), Settings(), limits=paid).drain(timeout=60)

    broadcasts = [m for m in api.sent if m.text == "News"]
    digests = [m for m in api.sent if m.text == "your digest"]
    assert len(broadcasts) == 300 and all(m.paid_broadcast for m in broadcasts)
    assert len(digests) == 20 and not any(m.paid_broadcast for m in digests)
    assert api.flood_429_count == 0
    tally = await broadcast_tally(sessions, broadcast.id)
    assert tally.delivered == 300


async def test_without_paid_broadcast_a_broadcast_is_sent_free(sessions) -> None:
    await add_chats(sessions, list(range(51_000, 51_010)))
    await queue_broadcast(sessions, "<b>News</b>", created_by=1)
    async with BotAPIDouble() as api, make_bot(api) as bot:
        await Sender(sessions, TelegramTransport(bot), Settings(), limits=limits()).drain(
            timeout=30
        )
    assert len(api.sent) == 10 and not any(m.paid_broadcast for m in api.sent)
