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

Sends go through lanes: connection pools of aiohttp (`AiohttpRequest`, PTB's request
interface: PTB still turns every answer into the errors above). httpx, PTB's own client,
cost ~1.5 ms of CPU a request here against ~0.4 ms for aiohttp: most of a sender's work.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import ssl
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import httpx
from telegram import Bot
from telegram._utils.defaultvalue import DefaultValue  # PTB's "not given" marker
from telegram._utils.types import ODVInput
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
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter  # PTB's own, not re-exported

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
    aiohttp.ClientConnectorError,  # refused, no route, DNS
    aiohttp.ConnectionTimeoutError,  # connecting, or waiting for a free connection
)
# the request was written and the answer never came: Telegram may have sent the message
_ANSWER_LOST = (
    httpx.ReadTimeout,
    httpx.ReadError,
    httpx.RemoteProtocolError,
    aiohttp.SocketTimeoutError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientOSError,  # a reset (ClientConnectorError, its subclass, is _NOT_SENT)
)


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
    lost = isinstance(cause, _ANSWER_LOST) and not isinstance(cause, _NOT_SENT)
    return isinstance(exc, NetworkError) and lost


def _is_thread_gone(exc: BadRequest) -> bool:
    """A forum topic that was deleted ("message thread not found") or closed."""
    text = exc.message.lower()
    return "message thread not found" in text or "topic_closed" in text or "topic_deleted" in text


def _is_chat_gone(exc: BadRequest) -> bool:
    text = exc.message.lower()
    return "chat not found" in text or "peer_id_invalid" in text or "user not found" in text


class TelegramTransport:
    """Sends outbox messages with `bot` (its token and server), through lanes of its own.

    A send goes to PTB's request layer (`BaseRequest.post`: the same HTTP, timeouts and
    errors as `Bot.send_message`) without building PTB objects for the request's buttons and
    the answer's Message: the sender needs only the answer's message_id.
    """

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._lanes: list[BaseRequest] = [bot.request]
        self._send_timeout = DeliveryLimits.send_timeout

    @contextlib.asynccontextmanager
    async def connections(self, limits: DeliveryLimits) -> AsyncIterator[None]:
        self._send_timeout = limits.send_timeout
        async with contextlib.AsyncExitStack() as stack:
            self._lanes = await _open_lanes(self.bot, limits.lane_count, limits.workers, stack)
            try:
                yield
            finally:
                self._lanes = [self.bot.request]

    async def send(self, message: ClaimedMessage, *, paid: bool) -> SendOutcome:
        lane = self._lanes[message.id % len(self._lanes)]
        try:
            answer = await lane.post(
                f"{self.bot.base_url}/sendMessage",
                _send_message_data(message, paid=paid),
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
        if isinstance(answer, dict) and isinstance(answer.get("message_id"), int):
            return Sent(answer["message_id"])
        # Telegram took it but the answer is no Message: sending again could repeat it
        return MaybeDelivered(one_line(f"maybe delivered, not resent: answer {answer!r}"[:200]))


# the same for every message: dumped once
_LINK_PREVIEW = json.dumps({"is_disabled": True})


def _param(name: str, value: object) -> RequestParameter:
    return RequestParameter(name, value, None)


def _send_message_data(message: ClaimedMessage, *, paid: bool) -> RequestData:
    """sendMessage's parameters for `message` (strings are sent as they are: JSON already)."""
    parameters = [
        _param("chat_id", message.telegram_chat_id),
        _param("text", message.text),
        _param("parse_mode", ParseMode.HTML.value),
        _param("link_preview_options", _LINK_PREVIEW),
    ]
    if message.thread_id:
        parameters.append(_param("message_thread_id", message.thread_id))
    if paid:
        parameters.append(_param("allow_paid_broadcast", True))
    if message.reply_markup:  # the Bot API JSON of the buttons, stored at enqueue
        parameters.append(_param("reply_markup", message.reply_markup))
    return RequestData(parameters)


class AiohttpRequest(BaseRequest):
    """PTB's request interface on an aiohttp session: PTB parses the answers and raises its
    errors as for its own httpx client; network errors keep their aiohttp cause, which
    `maybe_delivered` reads. Form-encoded parameters only (no file uploads: sendMessage)."""

    def __init__(
        self,
        connections: int,
        *,
        tls: ssl.SSLContext | None = None,
        read_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        pool_timeout: float = 10.0,
    ) -> None:
        self._connections = connections
        self._tls = tls
        self._timeouts = (read_timeout, connect_timeout, pool_timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return self._timeouts[0]

    async def initialize(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections, ssl=self._tls if self._tls is not None else True
            )
            self._session = aiohttp.ClientSession(connector=connector)

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        if request_data is not None and request_data.contains_files:
            raise RuntimeError("AiohttpRequest sends no files")
        read, connect, pool = (
            default if isinstance(given, DefaultValue) else given
            for given, default in zip(
                (read_timeout, connect_timeout, pool_timeout), self._timeouts, strict=True
            )
        )
        # connect: waiting for a pooled connection and opening one; sock_read: the answer
        timeout = aiohttp.ClientTimeout(
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        data = request_data.json_parameters if request_data is not None else None
        try:
            async with self._session.request(
                method, url, data=data, timeout=timeout, headers={"User-Agent": self.USER_AGENT}
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:  # aiohttp's timeouts are TimeoutErrors
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err


async def _open_lanes(
    bot: Bot, count: int, workers: int, stack: contextlib.AsyncExitStack
) -> list[BaseRequest]:
    """Connection pools to `bot`'s server (aiohttp), each small; without lanes, `bot`'s own
    request (httpx) sends. Several small pools keep each pool's bookkeeping short.
    """
    if count <= 0 or not isinstance(bot.request, HTTPXRequest):
        return [bot.request]
    # one TLS context for all lanes: building one costs ~50 ms (it loads the CA bundle)
    tls = ssl.create_default_context()
    lanes: list[BaseRequest] = []
    for _ in range(count):
        request = AiohttpRequest(connections=math.ceil(workers / count) + 1, tls=tls)
        await request.initialize()
        stack.push_async_callback(request.shutdown)
        lanes.append(request)
    return lanes


__all__ = [
    "AiohttpRequest",
    "TelegramTransport",
    "build_bot",
    "maybe_delivered",
    "retry_after_seconds",
]
