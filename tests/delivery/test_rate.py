"""SEND_RATE shared through the database: two processes never exceed it together, idle time
is never spent later as a burst, and a stop never leaves the database locked."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from bot.delivery.rate import CATCH_UP, FREE, SharedRate, reserve_slots


async def test_two_processes_on_one_rate_take_turns_and_stay_under_it(any_sessions):
    rate = 40.0
    first, second = (SharedRate(any_sessions, FREE, rate) for _ in range(2))
    taken: list[float] = []

    async def sends(shared: SharedRate, count: int) -> None:
        for _ in range(count):
            await shared.take()
            taken.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(sends(first, 20), sends(second, 20))
    # 40 messages at 40/s: about a second, however the two split the slots
    assert taken[-1] - started >= (len(taken) - 1) / rate * 0.9
    in_any_quarter_second = max(sum(1 for t in taken if s <= t < s + 0.25) for s in taken)
    assert in_any_quarter_second <= rate * 0.25 + 2


async def test_slots_left_unused_during_a_pause_are_not_sent_in_a_burst(any_sessions):
    rate = 50.0
    shared = SharedRate(any_sessions, FREE, rate, grant=1.0)  # a second's worth at once
    await shared.take()
    await asyncio.sleep(0.5)  # half the grant goes by unused
    started = time.monotonic()
    for _ in range(20):
        await shared.take()
    catch_up = CATCH_UP * rate + 1  # late slots that may still go at once
    assert time.monotonic() - started >= (19 - catch_up) / rate * 0.9


async def test_a_stop_in_the_middle_of_a_rate_grant_leaves_sqlite_writable(
    sessions, sqlite_url
) -> None:
    """The sender's dispatcher is cancelled at a stop, possibly inside the grant's UPDATE.

    A transaction cut off there kept SQLite's write lock: every later write (the sender's
    final write of what Telegram accepted) waited the 30 s busy timeout, and a stop hung
    (issue 10).
    """
    await reserve_slots(sessions, FREE, 1, 1000.0)  # the row exists: the grant is one UPDATE
    other = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a moment
    taking = asyncio.create_task(SharedRate(sessions, FREE, 1000.0).take())
    await asyncio.sleep(0.3)  # the grant's UPDATE is waiting for the lock
    taking.cancel()  # the stop
    await asyncio.sleep(0.1)
    other.execute("COMMIT")  # the grant's UPDATE now runs, its transaction must still end
    await asyncio.gather(taking, return_exceptions=True)
    other.close()

    async with asyncio.timeout(10):  # a lock left held costs the 30 s busy timeout
        first = await reserve_slots(sessions, FREE, 10, 1000.0)
    assert first > 0
