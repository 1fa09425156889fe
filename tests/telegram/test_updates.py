"""ChatOrderedUpdateProcessor: chats side by side, each chat in order, a bound on the whole."""

from __future__ import annotations

import asyncio

from telegram import CallbackQuery, Chat, Message, Update, User

from bot.telegram.updates import ChatOrderedUpdateProcessor

USER = User(id=7, first_name="T", is_bot=False)


def message_update(update_id: int, chat_id: int) -> Update:
    chat = Chat(id=chat_id, type="private" if chat_id > 0 else "group")
    message = Message(message_id=update_id, date=None, chat=chat, text="/x")  # type: ignore[arg-type]
    return Update(update_id=update_id, message=message)


def inline_button_update(update_id: int) -> Update:
    query = CallbackQuery(
        id=str(update_id), from_user=USER, chat_instance="c", inline_message_id="inline-1"
    )
    return Update(update_id=update_id, callback_query=query)


async def _process_all(
    processor: ChatOrderedUpdateProcessor, updates: list[tuple[Update, asyncio.Event | None]]
) -> tuple[list[int], list[asyncio.Task[None]]]:
    """Processes the updates as PTB does (one task each, in order); the order they ran in."""
    ran: list[int] = []

    async def handle(update: Update, gate: asyncio.Event | None) -> None:
        ran.append(update.update_id)
        if gate is not None:
            await gate.wait()

    tasks = [
        asyncio.create_task(processor.process_update(update, handle(update, gate)))
        for update, gate in updates
    ]
    await asyncio.sleep(0.05)
    return ran, tasks


async def test_a_chat_waits_for_its_own_earlier_update_but_not_for_other_chats() -> None:
    processor = ChatOrderedUpdateProcessor(max_concurrent_updates=4)
    gate = asyncio.Event()
    ran, tasks = await _process_all(
        processor,
        [
            (message_update(1, 100), gate),
            (message_update(2, 100), None),
            (message_update(3, 200), None),
        ],
    )
    assert ran == [1, 3]  # chat 100's second update waits; chat 200 does not
    gate.set()
    await asyncio.gather(*tasks)
    assert ran == [1, 3, 2]


async def test_updates_without_a_chat_run_at_once() -> None:
    processor = ChatOrderedUpdateProcessor(max_concurrent_updates=4)
    gate = asyncio.Event()
    ran, tasks = await _process_all(
        processor, [(inline_button_update(1), gate), (inline_button_update(2), None)]
    )
    assert ran == [1, 2]
    gate.set()
    await asyncio.gather(*tasks)


async def test_a_busy_chat_holds_one_slot_however_many_updates_it_queues() -> None:
    processor = ChatOrderedUpdateProcessor(max_concurrent_updates=2)
    gate = asyncio.Event()
    busy = [(message_update(n, 100), gate) for n in range(1, 11)]
    ran, tasks = await _process_all(processor, [*busy, (message_update(11, 200), None)])
    assert ran == [1, 11]  # ten queued updates of chat 100 left room for chat 200
    gate.set()
    await asyncio.gather(*tasks)
    assert ran == [1, 11, *range(2, 11)]


async def test_the_bound_counts_chats_in_progress() -> None:
    processor = ChatOrderedUpdateProcessor(max_concurrent_updates=2)
    gate = asyncio.Event()
    ran, tasks = await _process_all(
        processor, [(message_update(n, 100 + n), gate) for n in range(1, 4)]
    )
    assert ran == [1, 2]  # the third chat waits for a slot
    gate.set()
    await asyncio.gather(*tasks)
    assert ran == [1, 2, 3]
