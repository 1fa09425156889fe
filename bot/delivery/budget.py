"""One process's share of Telegram's sending limits, drawn on by the sender and the replies.

Telegram counts every message a bot sends, outbox messages and replies to commands alike, so
both take their turns from one `SendBudget` and together stay under:
- `rate` messages a second in all: slots 1/rate apart, handed out first come, first served;
- one message per `private_interval` to one chat, and at most `group_per_minute` to one
  group (negative chat ids) in any 60 s;
- after a 429 for the flood limit (`pause`), nobody's turn comes before its retry_after.

Kept in memory on the event loop's clock, for one process; the sender also draws on the
deployment's SEND_RATE, shared by every process (bot.delivery.rate), and keeps its per-chat
pacing in the database.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

GROUP_WINDOW = 60.0  # seconds over which a group's messages are counted
PRUNE_AT = 4096  # chats remembered before those whose turn has passed are forgotten


class BudgetLimits(Protocol):
    """The limits a budget is made from (bot.delivery.limits.DeliveryLimits has them)."""

    @property
    def send_rate(self) -> float: ...
    @property
    def private_interval(self) -> float: ...
    @property
    def group_per_minute(self) -> int: ...


class SendBudget:
    """Turns to send, shared by every sender of one process; see the module docstring."""

    def __init__(
        self, rate: float, *, private_interval: float = 1.0, group_per_minute: int = 20
    ) -> None:
        if rate <= 0 or private_interval < 0 or group_per_minute < 1:
            raise ValueError("rate and group_per_minute must be > 0, private_interval >= 0")
        self.interval = 1.0 / rate
        self.private_interval = private_interval
        self.group_per_minute = group_per_minute
        self._next_slot = 0.0  # loop time of the next free global slot
        self._paused_until = 0.0  # loop time until which a flood 429 holds everyone
        self._chat_free_at: dict[int, float] = {}
        self._group_turns: dict[int, deque[float]] = {}  # a group's last group_per_minute turns
        self._prune_at = PRUNE_AT

    @classmethod
    def for_limits(cls, limits: BudgetLimits) -> SendBudget:
        return cls(
            limits.send_rate,
            private_interval=limits.private_interval,
            group_per_minute=limits.group_per_minute,
        )

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def pause(self, seconds: float) -> None:
        """A 429 for the flood limit: no one sends for `seconds`."""
        self._paused_until = max(self._paused_until, self._now() + seconds)

    def hold_chat(self, chat_id: int, seconds: float) -> None:
        """No turn for the chat sooner than `seconds` from now (a group's 429; a late send)."""
        until = self._now() + seconds
        self._chat_free_at[chat_id] = max(self._chat_free_at.get(chat_id, 0.0), until)

    async def wait_unpaused(self) -> None:
        """Waits out a flood pause, taking no slot (paid broadcasts have a rate of their own)."""
        delay = self._paused_until - self._now()
        while delay > 0:  # a 429 during the wait may extend the pause
            await asyncio.sleep(delay)
            delay = self._paused_until - self._now()

    async def take(self) -> None:
        """Waits for the next global slot (and for any pause)."""
        while True:
            now = self._now()
            # a late caller may catch up one interval, never more (no bursts)
            self._next_slot = max(self._next_slot, now - self.interval)
            start = max(self._next_slot, self._paused_until)
            self._next_slot = start + self.interval  # reserved before sleeping: no one shares it
            if start <= now:
                return
            await asyncio.sleep(start - now)
            if self._paused_until <= start:
                return
            # a 429 came while we waited: queue again behind the pause

    async def take_for_chat(self, chat_id: int, *, have_slot: bool = False) -> None:
        """The chat's turn and a global slot: what one message to `chat_id` needs.

        Turns are reserved in the order asked for, so two messages to one chat (a reply and
        an outbox message) go in that order. `have_slot`: the caller already took a global
        slot; it takes a fresh one only if the chat made it wait.
        """
        start = self._reserve_chat(chat_id)
        delay = start - self._now()
        if delay > 0:
            await asyncio.sleep(delay)
        elif have_slot:
            return
        await self.take()
        # a pause may have put the send after its turn: the chat's next turn follows the send
        self.hold_chat(chat_id, self.private_interval)

    def _reserve_chat(self, chat_id: int) -> float:
        """The loop time of the chat's next turn, taken for the caller."""
        start = max(self._now(), self._chat_free_at.get(chat_id, 0.0))
        if chat_id < 0:
            turns = self._group_turns.get(chat_id)
            if turns is None:
                turns = self._group_turns[chat_id] = deque(maxlen=self.group_per_minute)
            elif len(turns) == self.group_per_minute:
                start = max(start, turns[0] + GROUP_WINDOW)
            turns.append(start)
        self._chat_free_at[chat_id] = start + self.private_interval
        if len(self._chat_free_at) > self._prune_at:
            self._forget_past()
        return start

    def _forget_past(self) -> None:
        now = self._now()
        self._chat_free_at = {c: at for c, at in self._chat_free_at.items() if at > now}
        self._group_turns = {
            c: turns for c, turns in self._group_turns.items() if turns[-1] > now - GROUP_WINDOW
        }
        self._prune_at = max(PRUNE_AT, 2 * len(self._chat_free_at))


__all__ = ["BudgetLimits", "SendBudget"]
