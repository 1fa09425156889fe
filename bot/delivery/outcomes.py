"""What one send came to, in plain words, and the `Transport` that sends.

A transport (bot.delivery.telegram_transport is the Telegram one) turns its service's
answers into these outcomes; the sender loop decides what each means for the queue and the
outcome store writes it. Nothing here imports `telegram`.
"""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.delivery.limits import DeliveryLimits
    from bot.delivery.outbox import ClaimedMessage

MAX_ERROR_LENGTH = 500
_TOKEN_RE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")


def one_line(text: str) -> str:
    """An error for `last_error`: one line, bounded, and never a bot token (URLs carry it)."""
    return _TOKEN_RE.sub("[token]", " ".join(text.split()))[:MAX_ERROR_LENGTH]


@dataclass(frozen=True)
class Sent:
    message_id: int


@dataclass(frozen=True)
class RetryAfter:
    """A flood limit: try again in `seconds`, the attempt not counted."""

    seconds: float
    reason: str


@dataclass(frozen=True)
class Failed:
    """Refused for good (e.g. bad HTML): retrying cannot help."""

    reason: str


@dataclass(frozen=True)
class ChatGone:
    """Blocked, kicked, deleted: the chat becomes inactive."""

    reason: str


@dataclass(frozen=True)
class ChatMoved:
    """The group became a supergroup with `new_chat_id`."""

    new_chat_id: int


@dataclass(frozen=True)
class TopicGone:
    """The forum topic is closed or deleted."""


@dataclass(frozen=True)
class MaybeDelivered:
    """No answer after the request left: it may have arrived; never sent again."""

    reason: str


@dataclass(frozen=True)
class Transient:
    """Not sent (connection, 5xx): worth a retry with backoff."""

    reason: str


SendOutcome = (
    Sent | RetryAfter | Failed | ChatGone | ChatMoved | TopicGone | MaybeDelivered | Transient
)


class Transport(Protocol):
    """Sends one outbox message; the only part of delivery that knows the service."""

    def connections(self, limits: DeliveryLimits) -> AbstractAsyncContextManager[None]:
        """Opens what a run of the sender needs (connection pools) and closes it after."""
        ...

    async def send(self, message: ClaimedMessage, *, paid: bool) -> SendOutcome:
        """One send; `paid`: a paid broadcast (Telegram's allow_paid_broadcast)."""
        ...


__all__ = [
    "ChatGone",
    "ChatMoved",
    "Failed",
    "MaybeDelivered",
    "RetryAfter",
    "SendOutcome",
    "Sent",
    "TopicGone",
    "Transient",
    "Transport",
    "one_line",
]
