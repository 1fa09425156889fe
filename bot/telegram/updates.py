"""How updates are handled: chats side by side, each chat's updates one at a time, in order.

PTB's `concurrent_updates` alone runs any updates at once, so a chat's `/subscribe x` and
`/list` could overtake each other. Here each chat has a queue: the first update of an idle
chat takes one of `max_concurrent_updates` slots and runs; updates that arrive meanwhile
wait in the chat's queue (holding no slot) and run in that slot, in arrival order. A slow
command therefore delays only its own chat, and one busy chat takes at most one slot.
Updates without a chat (e.g. buttons on inline messages) run at once, in a slot of their own.
A group becoming a supergroup is one queue: until its migration is handled, the new chat's
updates wait behind it in the old chat's queue (its settings are still being moved).
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

log = logging.getLogger(__name__)

MAX_CONCURRENT_UPDATES = 32


def chat_key(update: object) -> int | None:
    """The chat whose order an update keeps; None for updates that belong to no chat."""
    if not isinstance(update, Update):
        return None
    chat = update.effective_chat
    return chat.id if chat is not None else None


def migration(update: object) -> tuple[int, int] | None:
    """(old chat id, new chat id) for either service message of a group's migration."""
    message = update.effective_message if isinstance(update, Update) else None
    if message is None:
        return None
    if message.migrate_to_chat_id:
        return message.chat.id, message.migrate_to_chat_id
    if message.migrate_from_chat_id:
        return message.migrate_from_chat_id, message.chat.id
    return None


class ChatOrderedUpdateProcessor(BaseUpdateProcessor):
    """Per-chat queues under a bound on the updates in progress; see the module docstring."""

    def __init__(self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES) -> None:
        super().__init__(max_concurrent_updates)
        self._waiting: dict[int, deque[Awaitable[Any]]] = {}  # chats in progress
        self._moved: dict[int, int] = {}  # new chat id -> old one, while the move is handled

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        for queue in self._waiting.values():
            while queue:
                _discard(queue.popleft())
        self._waiting.clear()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        moved = migration(update)
        if moved is not None:
            key: int | None = moved[0]
            self._moved[moved[1]] = moved[0]
        else:
            key = chat_key(update)
            key = self._moved.get(key, key) if key is not None else None
        if key is None:
            await _run(coroutine)
            return
        waiting = self._waiting.get(key)
        if waiting is not None:  # the chat is busy: this update runs after the ones before it
            waiting.append(coroutine)
            return
        waiting = self._waiting[key] = deque()
        try:
            await _run(coroutine)
            while waiting:
                await _run(waiting.popleft())
        finally:
            # only when cancelled (the bot stopping hard) can updates be left behind
            del self._waiting[key]
            for new_id in [new for new, old in self._moved.items() if old == key]:
                del self._moved[new_id]
            while waiting:
                _discard(waiting.popleft())


async def _run(coroutine: Awaitable[Any]) -> None:
    try:
        await coroutine
    except Exception:  # Application.process_update reports handler errors itself
        log.exception("processing an update failed")


def _discard(coroutine: Awaitable[Any]) -> None:
    if inspect.iscoroutine(coroutine):
        coroutine.close()  # never started: no "was never awaited" warning


__all__ = ["MAX_CONCURRENT_UPDATES", "ChatOrderedUpdateProcessor", "chat_key"]
