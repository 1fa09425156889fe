"""Every Bot API call the bot's Application makes goes through here: paced, and retried on 429.

Messages (sends, edits, copies) wait for the chat's turn and a global slot of the process's
`SendBudget`, the one the outbox sender draws on, so replies and digests together stay under
Telegram's limits. A call refused with 429 waits `retry_after` and is made again, instead of
raising `RetryAfter` out of the handler and losing the reply; a 429 on a message also tells
the budget (a private chat's: everyone waits, like the sender does; a group's: that group).

On PostgreSQL, where several processes may send for one deployment (an `updates`-only
process beside sender processes), each message also takes a slot of the deployment's
SEND_RATE (bot.delivery.rate, the rate the senders share), so replies and digests of every
process together stay under it; if the database cannot be reached, the reply goes out on
the process's own budget rather than not at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot import metrics
from bot.delivery.budget import SendBudget
from bot.delivery.rate import SharedRate
from bot.delivery.telegram_transport import retry_after_seconds

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]  # what PTB's request callback answers

MAX_RETRIES = 5
MAX_RETRY_WAIT = 60.0  # seconds; a longer ban is Telegram's flood ban: give up, say so in the log
_MESSAGE_PREFIXES = ("send", "edit", "copy", "forward")
_NOT_MESSAGES = frozenset({"sendchataction"})


def is_message_call(endpoint: str) -> bool:
    """Whether the call puts a message in a chat (what Telegram's limits count)."""
    name = endpoint.lower()
    return name.startswith(_MESSAGE_PREFIXES) and name not in _NOT_MESSAGES


def _chat_id(data: dict[str, Any]) -> int | None:
    try:
        return int(data["chat_id"])
    except (KeyError, TypeError, ValueError):  # inline messages; @channel usernames
        return None


class BudgetRateLimiter(BaseRateLimiter[None]):
    """PTB's rate limiter hook, drawing on a shared `SendBudget`; see the module docstring."""

    def __init__(
        self,
        budget: SendBudget,
        *,
        max_retries: int = MAX_RETRIES,
        max_retry_wait: float = MAX_RETRY_WAIT,
        shared_rate: SharedRate | None = None,
    ) -> None:
        self.budget = budget
        self.shared_rate = shared_rate
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | JSONDict | list[JSONDict]:
        paced = is_message_call(endpoint)
        chat_id = _chat_id(data) if paced else None
        attempt = 0
        while True:
            if chat_id is not None:
                await self.budget.take_for_chat(chat_id)
            elif paced:
                await self.budget.take()
            if paced and self.shared_rate is not None:
                await self._take_shared()
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                metrics.RETRY_AFTER.inc()
                wait = retry_after_seconds(exc)
                attempt += 1
                if attempt > self.max_retries or wait > self.max_retry_wait:
                    log.warning("%s still refused after %d tries: %s", endpoint, attempt, exc)
                    raise
                log.info("%s got 429; trying again in %.0f s", endpoint, wait)
                if chat_id is not None and chat_id < 0:
                    self.budget.hold_chat(chat_id, wait)
                elif paced:
                    self.budget.pause(wait)
                else:
                    await asyncio.sleep(wait)  # not a message: the budget does not count it

    async def _take_shared(self) -> None:
        assert self.shared_rate is not None
        try:
            await self.shared_rate.take()
        except Exception as exc:  # the database is down: a reply on our own budget still
            log.warning("shared SEND_RATE unavailable, replying on this process's budget: %s", exc)


__all__ = ["BudgetRateLimiter", "is_message_call"]
