"""A slow Telegram: answers that come late never turn into duplicate messages.

The double holds a share of sendMessage answers AFTER it has delivered the message, as
Telegram under load does. Times are scaled down: the Bot's own read timeout (PTB's 5 s by
default) is 1 s here, the holds 1.5 s.
"""

from __future__ import annotations

from collections import Counter

import aiohttp
import httpx
import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut
from telegram.request import HTTPXRequest

from bot.config import Settings
from bot.delivery.sender import Sender
from bot.delivery.telegram_transport import TelegramTransport, maybe_delivered
from bot.models import MessageState
from tests.delivery.helpers import add_chats, limits, outbox, queue_text
from tests.doubles.telegram_api import BotAPIDouble

CHATS = list(range(7000, 7020))


def _short_timeout_bot(api: BotAPIDouble) -> Bot:
    """A Bot with PTB's defaults scaled down: it gives up reading an answer after 1 s."""
    request = HTTPXRequest(connection_pool_size=32, pool_timeout=10.0, read_timeout=1.0)
    return Bot(token=api.token, base_url=api.base_url, request=request)


def _copies_per_chat(api: BotAPIDouble) -> Counter[int]:
    return Counter(m.chat_id for m in api.sent)


# lanes=0: the sender sends through that very Bot (PTB's httpx); -1: its own aiohttp lanes
LANES = pytest.mark.parametrize("lanes", [0, -1], ids=["bot-httpx", "aiohttp-lanes"])


@LANES
async def test_answers_slower_than_ptbs_default_but_within_the_send_timeout_give_no_duplicates(
    any_sessions, api: BotAPIDouble, settings: Settings, lanes: int
):
    chats = await add_chats(any_sessions, CHATS)
    await queue_text(any_sessions, chats, "<b>Maintenance</b> tonight")
    api.hold_answers("sendMessage", fraction=0.3, seconds=1.5)

    async with _short_timeout_bot(api) as bot:
        # the sender's own send timeout (the default, for Telegram under load) applies, not
        # the Bot's short one, whichever connections send
        sender = Sender(any_sessions, TelegramTransport(bot), settings, limits=limits(lanes=lanes))
        stats = await sender.drain(timeout=30)

    assert _copies_per_chat(api) == Counter(dict.fromkeys(CHATS, 1))
    assert api.held_answers == 6  # 30% of 20 answers came 1.5 s late
    assert stats.sent == len(CHATS) and stats.retried == 0
    assert all(row.state == MessageState.sent for row in await outbox(any_sessions))


@LANES
async def test_answers_slower_than_the_send_timeout_are_never_sent_again(
    any_sessions, api: BotAPIDouble, settings: Settings, lanes: int
):
    chats = await add_chats(any_sessions, CHATS)
    await queue_text(any_sessions, chats, "<b>Maintenance</b> tonight")
    api.hold_answers("sendMessage", fraction=0.3, seconds=1.5)

    async with _short_timeout_bot(api) as bot:
        sender = Sender(
            any_sessions,
            TelegramTransport(bot),
            settings,
            limits=limits(lanes=lanes, send_timeout=1.0),
        )
        stats = await sender.drain(timeout=30)

    # at most one copy more per message is allowed; resending nothing gives none
    assert _copies_per_chat(api) == Counter(dict.fromkeys(CHATS, 1))
    assert len(api.calls_to("sendMessage")) == len(CHATS)
    rows = await outbox(any_sessions)
    unconfirmed = [row for row in rows if row.telegram_message_id is None]
    assert len(unconfirmed) == api.held_answers == 6
    for row in unconfirmed:  # Telegram had it: counted as sent, and says why it is unconfirmed
        assert row.state == MessageState.sent
        assert (row.last_error or "").startswith("maybe delivered, not resent: TimedOut")
    assert stats.sent == len(CHATS) and stats.retried == 0


def _raised_from(exc: Exception, cause: BaseException) -> Exception:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("error", "maybe"),
    [
        (_raised_from(TimedOut(), httpx.ReadTimeout("read")), True),
        (
            _raised_from(NetworkError("httpx.RemoteProtocolError"), httpx.RemoteProtocolError("x")),
            True,
        ),
        (_raised_from(NetworkError("httpx.ReadError"), httpx.ReadError("reset")), True),
        (TimedOut(), True),  # no cause: assume the worst
        (_raised_from(TimedOut(), httpx.ConnectTimeout("connect")), False),
        (_raised_from(TimedOut("Pool timeout"), httpx.PoolTimeout("pool")), False),
        (_raised_from(NetworkError("httpx.ConnectError"), httpx.ConnectError("refused")), False),
        (_raised_from(TimedOut(), httpx.WriteTimeout("write")), False),
        (NetworkError("Bad Gateway"), False),  # Telegram answered: it did not take the message
        # the same through the sender's aiohttp lanes
        (_raised_from(TimedOut(), aiohttp.SocketTimeoutError("read")), True),
        (_raised_from(NetworkError("x"), aiohttp.ServerDisconnectedError()), True),
        (_raised_from(NetworkError("x"), aiohttp.ClientOSError(104, "reset by peer")), True),
        (_raised_from(TimedOut(), aiohttp.ConnectionTimeoutError("connect")), False),
        (
            _raised_from(
                NetworkError("x"),
                aiohttp.ClientConnectorError(
                    None,  # type: ignore[arg-type]
                    OSError(111, "refused"),
                ),
            ),
            False,
        ),
    ],
)
def test_only_a_request_telegram_may_have_received_counts_as_maybe_delivered(error, maybe):
    assert maybe_delivered(error) is maybe
