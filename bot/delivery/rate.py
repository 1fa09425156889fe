"""SEND_RATE for the whole deployment: slots shared by every sender process via the database.

A `send_rate` row per rate holds the Unix time of the first slot nobody has taken. A sender
takes `grant` seconds' worth at once (one UPDATE … RETURNING moves the time forward, so two
senders never get one slot) and hands them out locally, 1/rate apart. Idle time is not
saved up: a grant starts no earlier than now, and a slot more than CATCH_UP (or one slot)
late is dropped, so a burst is at most that much (Telegram counts per second). Works the same
on SQLite (one process, usually) and PostgreSQL (any number).
"""

from __future__ import annotations

import asyncio
import math
import time

from sqlalchemy import Table, func, update

from bot.db import SessionFactory, dialect_of, finish_transaction, insert_ignoring_conflicts
from bot.models import metadata

SEND_RATE: Table = metadata.tables["send_rate"]
FREE = "free"  # SEND_RATE: digests, alerts, notices, broadcasts unless paid
PAID = "paid"  # PAID_SEND_RATE: broadcasts with allow_paid_broadcast
# seconds a slot may be taken late (one slot at least): at 1000/s a slot is 1 ms, less than
# an event loop's hiccup, and dropping every late one lost ~40 % of PAID_SEND_RATE; at 40/s
# it is one slot, as before (a second never holds more than ~2 % over the rate)
CATCH_UP = 0.02


async def reserve_slots(sessions: SessionFactory, name: str, count: int, rate: float) -> float:
    """Takes `count` slots of the shared rate `name`; the Unix time of the first of them."""
    span = count / rate
    async with sessions() as session:
        dialect = dialect_of(session)
        latest = func.max if dialect == "sqlite" else func.greatest
        stmt = (
            update(SEND_RATE)
            .where(SEND_RATE.c.name == name)
            .values(next_slot_at=latest(SEND_RATE.c.next_slot_at, time.time()) + span)
            .returning(SEND_RATE.c.next_slot_at)
        )
        end = (await session.exec(stmt)).scalar_one_or_none()
        if end is None:  # the first sender ever: the row, then the same UPDATE
            insert = insert_ignoring_conflicts(dialect, SEND_RATE, ["name"])
            await session.exec(insert.values(name=name, next_slot_at=0.0))
            end = (await session.exec(stmt)).scalar_one()
        await session.commit()
    return float(end) - span


class SharedRate:
    """This process's turns at one shared rate; `take()` waits for the next one.

    A grant is kept as arithmetic (its next slot and how many are left), not as a list of
    slots: at SEND_RATE=100000 a grant is 25,000 slots, and building and skipping them one by
    one cost more CPU than the sends.
    """

    def __init__(
        self, sessions: SessionFactory, name: str, rate: float, *, grant: float = 0.25
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._sessions = sessions
        self.name = name
        self.rate = rate
        self._step = 1.0 / rate
        self._grant = max(1, math.ceil(rate * grant))
        self._next = 0.0  # Unix time of the next slot of the current grant
        self._left = 0  # slots of the current grant not handed out yet
        self._refill = asyncio.Lock()

    def _skip_missed(self, now: float) -> None:
        """Slots that went by unused (a pause) are dropped, but for CATCH_UP's worth."""
        late = now - max(self._step, CATCH_UP) - self._next
        if self._left and late > 0:
            skip = min(self._left, math.ceil(late / self._step))
            self._next += skip * self._step
            self._left -= skip

    async def take(self) -> None:
        """Waits for this process's next slot, reserving a grant from the database if needed."""
        while True:
            self._skip_missed(time.time())
            if self._left:
                break
            async with self._refill:
                if not self._left:
                    first = await finish_transaction(
                        reserve_slots(self._sessions, self.name, self._grant, self.rate)
                    )
                    self._next, self._left = first, self._grant
        slot = self._next
        self._next += self._step
        self._left -= 1
        delay = slot - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


__all__ = ["CATCH_UP", "FREE", "PAID", "SharedRate", "reserve_slots"]
