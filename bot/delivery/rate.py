"""SEND_RATE for the whole deployment: slots shared by every sender process via the database.

A `send_rate` row per rate holds the Unix time of the first slot nobody has taken. A sender
takes `grant` seconds' worth at once (one UPDATE … RETURNING moves the time forward, so two
senders never get one slot) and hands them out locally, 1/rate apart. Idle time is not
saved up: a grant starts no earlier than now, so there is never a burst. Works the same
on SQLite (one process, usually) and PostgreSQL (any number).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from sqlalchemy import Table, func, update

from bot.db import SessionFactory, dialect_of, finish_transaction, insert_ignoring_conflicts
from bot.models import metadata

SEND_RATE: Table = metadata.tables["send_rate"]
FREE = "free"  # SEND_RATE: digests, alerts, notices, broadcasts unless paid
PAID = "paid"  # PAID_SEND_RATE: broadcasts with allow_paid_broadcast


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
    """This process's turns at one shared rate; `take()` waits for the next one."""

    def __init__(
        self, sessions: SessionFactory, name: str, rate: float, *, grant: float = 0.25
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._sessions = sessions
        self.name = name
        self.rate = rate
        self._grant = max(1, math.ceil(rate * grant))
        self._slots: deque[float] = deque()
        self._refill = asyncio.Lock()

    async def take(self) -> None:
        """Waits for this process's next slot, reserving a grant from the database if needed."""
        while True:
            now = time.time()
            # slots that went by unused (a pause, a slow loop) are never sent in a burst
            while self._slots and self._slots[0] < now - 1.0 / self.rate:
                self._slots.popleft()
            if self._slots:
                break
            async with self._refill:
                if not self._slots:
                    first = await finish_transaction(
                        reserve_slots(self._sessions, self.name, self._grant, self.rate)
                    )
                    step = 1.0 / self.rate
                    self._slots.extend(first + i * step for i in range(self._grant))
        slot = self._slots.popleft()
        delay = slot - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


__all__ = ["FREE", "PAID", "SharedRate", "reserve_slots"]
