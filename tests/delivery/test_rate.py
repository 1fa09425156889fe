"""The shared SEND_RATE (bot.delivery.rate): a stop never leaves the database locked."""

from __future__ import annotations

import asyncio
import sqlite3

from bot.delivery.rate import FREE, SharedRate, reserve_slots


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
