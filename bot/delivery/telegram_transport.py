"""The Telegram transport: the one part of delivery that imports `telegram`.

It sends one outbox message with python-telegram-bot and turns the answer into a plain
outcome (bot.delivery.outcomes):
- RetryAfter -> RetryAfter(seconds).
- Forbidden, BadRequest "chat not found" (and the like) -> ChatGone.
- ChatMigrated -> ChatMoved(new id).
- BadRequest "message thread not found" / TOPIC_CLOSED for a forum topic -> TopicGone.
- Any other BadRequest (e.g. can't parse entities) -> Failed.
- TimedOut, or a NetworkError after the request was written (connection reset, closed
  without an answer) -> MaybeDelivered: Telegram may have delivered it (a 25 s read timeout,
  `send_timeout`, means Telegram had the request: in the incident behind this rule every
  timed-out send had arrived).
- NetworkError before the request left (connect, pool), 5xx, anything else -> Transient.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import ssl
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    TelegramError,
    TimedOut,
)
from telegram.error import RetryAfter as TelegramRetryAfter
from telegram.request import HTTPXRequest

from bot.config import Settings
from bot.delivery.limits import DeliveryLimits
from bot.delivery.outbox import ClaimedMessage
from bot.delivery.outcomes import (
    ChatGone,
    ChatMoved,
    Failed,
    MaybeDelivered,
    RetryAfter,
    SendOutcome,
    Sent,
    TopicGone,
    Transient,
    one_line,
)

log = logging.getLogger(__name__)


def build_bot(settings: Settings, limits: DeliveryLimits) -> Bot:
    """A PTB Bot for `settings`, with enough connections for the sender's concurrency."""
    request = HTTPXRequest(connection_pool_size=limits.workers + 4, pool_timeout=10.0)
    return Bot(token=settings.token, base_url=settings.telegram_api_url, request=request)


def retry_after_seconds(exc: TelegramRetryAfter) -> float:
    # PTB 22 keeps a timedelta; the public property may warn about its future type
    value = getattr(exc, "_retry_after", None)
    if isinstance(value, timedelta):
        return value.total_seconds()
    public = exc.retry_after
    return public.total_seconds() if isinstance(public, timedelta) else float(public)


# the request never reached Telegram: sending it again cannot make a duplicate
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.LocalProtocolError,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)
# the request was written and the answer never came: Telegram may have sent the message
_ANSWER_LOST = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)


def maybe_delivered(exc: BaseException) -> bool:
    """True if Telegram may have delivered the message although we got no answer.

    A timeout counts unless it came before the request left (connect, pool, write); another
    network error counts only when the answer was lost after the request was written.
    """
    if isinstance(exc, BadRequest | Forbidden | TelegramRetryAfter | ChatMigrated):
        return False  # Telegram answered
    cause = exc.__cause__
    if isinstance(exc, TimedOut):
        return not isinstance(cause, _NOT_SENT)
    return isinstance(exc, NetworkError) and isinstance(cause, _ANSWER_LOST)


def _is_thread_gone(exc: BadRequest) -> bool:
    """A forum topic that was deleted ("message thread not found") or closed."""
    text = exc.message.lower()
    return "message thread not found" in text or "topic_closed" in text or "topic_deleted" in text


def _is_chat_gone(exc: BadRequest) -> bool:
    text = exc.message.lower()
    return "chat not found" in text or "peer_id_invalid" in text or "user not found" in text


class TelegramTransport:
    """Sends outbox messages with `bot` (its token and server), through lanes of its own."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._lanes: list[Bot] = [bot]
        self._send_timeout = DeliveryLimits.send_timeout
        self._link_preview = LinkPreviewOptions(is_disabled=True)

    @contextlib.asynccontextmanager
    async def connections(self, limits: DeliveryLimits) -> AsyncIterator[None]:
        self._send_timeout = limits.send_timeout
        async with contextlib.AsyncExitStack() as stack:
            self._lanes = await _open_lanes(self.bot, limits.lane_count, limits.workers, stack)
            try:
                yield
            finally:
                self._lanes = [self.bot]

    async def send(self, message: ClaimedMessage, *, paid: bool) -> SendOutcome:
        lane = self._lanes[message.id % len(self._lanes)]
        try:
            sent = await lane.send_message(
                chat_id=message.telegram_chat_id,
                text=message.text,
                parse_mode=ParseMode.HTML,
                link_preview_options=self._link_preview,
                message_thread_id=message.thread_id or None,
                allow_paid_broadcast=True if paid else None,
                reply_markup=(
                    InlineKeyboardMarkup.de_json(json.loads(message.reply_markup), lane)
                    if message.reply_markup
                    else None
                ),
                read_timeout=self._send_timeout,
                write_timeout=self._send_timeout,
            )
        except TelegramRetryAfter as exc:
            return RetryAfter(retry_after_seconds(exc), one_line(str(exc)))
        except ChatMigrated as exc:
            return ChatMoved(exc.new_chat_id)
        except Forbidden as exc:
            return ChatGone(one_line(exc.message))
        except BadRequest as exc:
            if _is_chat_gone(exc):
                return ChatGone(one_line(exc.message))
            if message.thread_id and _is_thread_gone(exc):
                return TopicGone()
            return Failed(one_line(exc.message))
        except NetworkError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if maybe_delivered(exc):
                return MaybeDelivered(one_line(f"maybe delivered, not resent: {reason}"))
            return Transient(one_line(reason))
        except (TelegramError, OSError, TimeoutError) as exc:  # 5xx and the like
            return Transient(one_line(f"{type(exc).__name__}: {exc}"))
        return Sent(sent.message_id)


async def _open_lanes(
    bot: Bot, count: int, workers: int, stack: contextlib.AsyncExitStack
) -> list[Bot]:
    """Bots like `bot` (same token and server), each with a small pool of connections.

    httpcore's pool costs grow with the requests it juggles: 16 requests over 8 small pools
    go about 2.5x faster than over one pool of 16. Without lanes, `bot` itself sends.
    """
    if count <= 0 or not isinstance(bot.request, HTTPXRequest):
        return [bot]
    base_url = bot.base_url.replace(bot.token, "{token}")
    # one TLS context for all lanes: building one costs ~50 ms (it loads the CA bundle)
    shared = {"verify": ssl.create_default_context()}
    lanes = []
    for _ in range(count):
        request = HTTPXRequest(
            connection_pool_size=math.ceil(workers / count) + 1,
            pool_timeout=10.0,
            httpx_kwargs=shared,
        )
        await request.initialize()
        stack.push_async_callback(request.shutdown)
        # only sendMessage goes through a lane: no getMe needed (Bot.initialize would call it)
        lanes.append(Bot(token=bot.token, base_url=base_url, request=request))
    return lanes


__all__ = ["TelegramTransport", "build_bot", "maybe_delivered", "retry_after_seconds"]
