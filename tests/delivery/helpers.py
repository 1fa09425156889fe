"""Helpers for delivery tests: chats, queued messages, the outbox as rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import col, select
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.db import SessionFactory
from bot.delivery.outbox import OutboxRow, enqueue_many
from bot.delivery.sender import DeliveryLimits
from bot.models import Chat, MessageKind, OutboxMessage
from tests.doubles.telegram_api import BotAPIDouble

# fast retries, short leases and pacing for tests; pacing tests set Telegram's own
FAST: dict[str, Any] = {
    "backoff_base": 0.05,
    "lease": 5.0,
    "idle_poll": 0.2,
    "flush_interval": 0.01,
    "private_interval": 0.1,
    "group_per_minute": 600,
}


def make_bot(api: BotAPIDouble, pool: int = 64) -> Bot:
    return Bot(
        token=api.token,
        base_url=api.base_url,
        request=HTTPXRequest(connection_pool_size=pool, pool_timeout=10.0),
    )


def limits(**overrides: Any) -> DeliveryLimits:
    values: dict[str, Any] = {"send_rate": 200.0, **FAST}
    values.update(overrides)
    return DeliveryLimits(**values)


async def add_chats(
    sessions: SessionFactory, telegram_ids: list[int], *, chat_type: str | None = None
) -> list[Chat]:
    """Chat rows for these Telegram ids (private for positive ids, group for negative ones)."""
    async with sessions() as session:
        chats = [
            Chat(telegram_id=tid, type=chat_type or ("private" if tid > 0 else "group"))
            for tid in telegram_ids
        ]
        session.add_all(chats)
        await session.commit()
        for chat in chats:
            await session.refresh(chat)
    return chats


async def queue_text(
    sessions: SessionFactory, chats: list[Chat], text: str | Callable[[Chat], str], **kw: Any
) -> None:
    rows = [
        OutboxRow(
            chat_id=chat.id or 0,
            text=text(chat) if callable(text) else text,
            kind=kw.get("kind", MessageKind.notice),
            thread_id=kw.get("thread_id", 0),
            broadcast_id=kw.get("broadcast_id"),
        )
        for chat in chats
    ]
    async with sessions() as session:
        await enqueue_many(session, rows)
        await session.commit()


async def outbox(sessions: SessionFactory) -> list[OutboxMessage]:
    async with sessions() as session:
        return list((await session.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def chat_by_id(sessions: SessionFactory, chat_id: int) -> Chat | None:
    async with sessions() as session:
        return await session.get(Chat, chat_id)


async def queued_texts(sessions: SessionFactory, chat: Chat) -> list[str]:
    """The texts queued for `chat`, in the order they were queued."""
    async with sessions() as s:
        rows = await s.exec(
            select(OutboxMessage.text)
            .where(OutboxMessage.chat_id == chat.id)
            .order_by(col(OutboxMessage.id))
        )
        return list(rows.all())
