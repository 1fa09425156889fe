"""SendBudget: the turns the sender and the replies share."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.delivery.budget import SendBudget


async def test_turns_for_one_chat_go_in_the_order_asked_one_interval_apart() -> None:
    budget = SendBudget(1000, private_interval=0.05)
    loop = asyncio.get_running_loop()
    went: list[tuple[str, float]] = []

    async def send(name: str, *, have_slot: bool = False) -> None:
        await budget.take_for_chat(1, have_slot=have_slot)
        went.append((name, loop.time()))

    # a reply asks first, then the sender (already holding a global slot), then a reply
    await asyncio.gather(send("reply"), send("outbox", have_slot=True), send("reply 2"))

    assert [name for name, _ in went] == ["reply", "outbox", "reply 2"]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(went)]
    assert all(gap >= 0.045 for gap in gaps), gaps


async def test_global_slots_are_shared_and_never_doubled() -> None:
    budget = SendBudget(50)  # one slot every 20 ms
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(budget.take_for_chat(chat) for chat in range(10)), budget.take())
    # 11 takers: the first two may go at once (one interval caught up), then 20 ms apart
    assert loop.time() - started >= 9 * 0.02 * 0.95


async def test_a_pause_holds_everyone_and_a_group_hold_only_that_group() -> None:
    budget = SendBudget(1000, private_interval=0)
    loop = asyncio.get_running_loop()
    budget.hold_chat(-5, 10)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(budget.take_for_chat(-5), 0.05)
    await asyncio.wait_for(budget.take_for_chat(-6), 0.05)  # another group goes

    budget.pause(0.1)
    started = loop.time()
    await budget.take_for_chat(1)
    assert loop.time() - started >= 0.09


async def test_a_group_gets_at_most_group_per_minute_turns() -> None:
    budget = SendBudget(1000, private_interval=0, group_per_minute=3)
    for _ in range(3):
        await asyncio.wait_for(budget.take_for_chat(-5), 0.05)
    with pytest.raises(TimeoutError):  # the fourth waits for the minute
        await asyncio.wait_for(budget.take_for_chat(-5), 0.05)
    await asyncio.wait_for(budget.take_for_chat(7), 0.05)  # a private chat has no such limit
