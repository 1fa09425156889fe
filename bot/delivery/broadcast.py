"""Admin broadcasts: checked, previewed (draft), confirmed once into the outbox, tallied.

A broadcast is an announcement: on Confirm it goes to every ACTIVE chat, paused ones
included (pausing stops digests, not announcements). Chats that blocked the bot or are
gone (active=False) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, func, insert, literal, select, update
from sqlmodel import col
from sqlmodel import select as sqlmodel_select

from bot.db import SessionFactory
from bot.delivery.html import check_telegram_html
from bot.delivery.outbox import CHAT, OUTBOX, fetch_rows
from bot.models import (
    PRIORITY,
    Broadcast,
    BroadcastState,
    MessageKind,
    MessageState,
    metadata,
    utcnow,
)

BROADCAST: Table = metadata.tables["broadcast"]
UNFINISHED = (MessageState.queued.value, MessageState.sending.value)


@dataclass(frozen=True)
class BroadcastTally:
    """Where a broadcast stands: delivered, blocked (chat blocked the bot or is gone), failed."""

    total: int
    delivered: int
    blocked: int
    failed: int
    pending: int

    @property
    def done(self) -> bool:
        return self.pending == 0


@dataclass(frozen=True)
class Confirmation:
    """What a Confirm did: `queued_now` is True only for the one call that queued the broadcast."""

    broadcast: Broadcast
    queued_now: bool


async def create_broadcast(
    sessions: SessionFactory, text: str, created_by: int | None
) -> Broadcast:
    """A draft broadcast (the preview); TelegramHTMLError (one line) if Telegram would refuse it."""
    check_telegram_html(text)
    async with sessions() as session:
        broadcast = Broadcast(text=text, created_by=created_by, state=BroadcastState.draft)
        session.add(broadcast)
        await session.commit()
        await session.refresh(broadcast)
    return broadcast


async def _get(sessions: SessionFactory, broadcast_id: int) -> Broadcast | None:
    async with sessions() as session:
        return await session.get(Broadcast, broadcast_id)


async def confirm_broadcast(sessions: SessionFactory, broadcast_id: int) -> Confirmation:
    """draft → queued: one outbox message per active chat, `total` set, in one transaction.

    Atomic: a conditional UPDATE (draft → queued) decides, by its rowcount, which call queues;
    any other call at the same moment, or later, gets `queued_now=False` and the broadcast as
    it is (a double tap on Confirm queues once). LookupError if there is no such broadcast.
    """
    now = utcnow()
    async with sessions() as session:
        moved = await session.exec(
            update(BROADCAST)
            .where(BROADCAST.c.id == broadcast_id, BROADCAST.c.state == BroadcastState.draft.value)
            .values(state=BroadcastState.queued.value, confirmed_at=now)
        )
        queued_now = moved.rowcount == 1
        if queued_now:
            found = await fetch_rows(
                session, select(BROADCAST.c.text).where(BROADCAST.c.id == broadcast_id)
            )
            text = found[0][0]
            # one INSERT … SELECT: 100,000 chats never pass through Python
            rows = select(
                CHAT.c.id,
                literal(0),
                literal(MessageKind.broadcast.value),
                literal(PRIORITY[MessageKind.broadcast]),
                literal(text),
                literal(MessageState.queued.value),
                literal(0),
                literal(now, OUTBOX.c.not_before.type),
                literal(broadcast_id),
                literal(now, OUTBOX.c.created_at.type),
            ).where(CHAT.c.active.is_(True))
            inserted = await session.exec(
                insert(OUTBOX).from_select(
                    [
                        "chat_id",
                        "thread_id",
                        "kind",
                        "priority",
                        "text",
                        "state",
                        "attempts",
                        "not_before",
                        "broadcast_id",
                        "created_at",
                    ],
                    rows,
                )
            )
            total = int(inserted.rowcount or 0)
            values: dict[str, object] = {"total": total}
            if total == 0:
                values |= {"state": BroadcastState.done.value, "finished_at": now}
            await session.exec(
                update(BROADCAST).where(BROADCAST.c.id == broadcast_id).values(**values)
            )
        await session.commit()
    broadcast = await _get(sessions, broadcast_id)
    if broadcast is None:
        raise LookupError(f"there is no broadcast #{broadcast_id}")
    return Confirmation(broadcast, queued_now)


async def cancel_broadcast(sessions: SessionFactory, broadcast_id: int) -> Broadcast | None:
    """draft → cancelled (nothing queued); a confirmed one comes back unchanged; None if unknown."""
    async with sessions() as session:
        await session.exec(
            update(BROADCAST)
            .where(BROADCAST.c.id == broadcast_id, BROADCAST.c.state == BroadcastState.draft.value)
            .values(state=BroadcastState.cancelled.value, finished_at=utcnow())
        )
        await session.commit()
    return await _get(sessions, broadcast_id)


async def queue_broadcast(sessions: SessionFactory, text: str, created_by: int | None) -> Broadcast:
    """create + confirm (`press-digest broadcast TEXT`); TelegramHTMLError first, if any."""
    draft = await create_broadcast(sessions, text, created_by)
    assert draft.id is not None
    return (await confirm_broadcast(sessions, draft.id)).broadcast


async def broadcast_tally(sessions: SessionFactory, broadcast_id: int) -> BroadcastTally:
    """Counts of the broadcast's messages by outcome (LookupError if there is no such broadcast)."""
    async with sessions() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
        if broadcast is None:
            raise LookupError(f"there is no broadcast #{broadcast_id}")
        rows = await fetch_rows(
            session,
            select(OUTBOX.c.state, func.count())
            .where(OUTBOX.c.broadcast_id == broadcast_id)
            .group_by(OUTBOX.c.state),
        )
    by_state: dict[str, int] = {row[0]: int(row[1]) for row in rows}
    return BroadcastTally(
        total=broadcast.total,
        delivered=by_state.get(MessageState.sent.value, 0),
        blocked=by_state.get(MessageState.dropped.value, 0),
        failed=by_state.get(MessageState.failed.value, 0),
        pending=sum(by_state.get(state, 0) for state in UNFINISHED),
    )


async def finish_broadcast_if_done(sessions: SessionFactory, broadcast_id: int) -> bool:
    """Marks a queued broadcast `done` once none of its messages is left to send; True if done."""
    async with sessions() as session:
        state = (
            await session.exec(
                sqlmodel_select(col(Broadcast.state)).where(col(Broadcast.id) == broadcast_id)
            )
        ).first()
        if state is None or state == BroadcastState.done.value:
            return state is not None
        if state != BroadcastState.queued.value:
            return False
        pending = await fetch_rows(
            session,
            select(OUTBOX.c.id)
            .where(OUTBOX.c.state.in_(UNFINISHED), OUTBOX.c.broadcast_id == broadcast_id)
            .limit(1),
        )
        if pending:
            return False
        await session.exec(
            update(BROADCAST)
            .where(BROADCAST.c.id == broadcast_id, BROADCAST.c.state == BroadcastState.queued.value)
            .values(state=BroadcastState.done.value, finished_at=utcnow())
        )
        await session.commit()
    return True
