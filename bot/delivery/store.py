"""The outcome store: writes a batch of send outcomes in one short transaction.

Three tables move together: the outbox rows (sent, back to the queue, failed), the chats'
pacing (`chat.next_send_at`: the chat's interval after a send really went) and the chat
lifecycle (gone, migrated, a forum topic closed: bot.subscriptions' one rule for each).
A row is changed only while this sender still holds its claim (`claimed_until` unchanged),
except a sent one: a message Telegram took is sent whoever holds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import SessionFactory
from bot.delivery.limits import DeliveryLimits
from bot.delivery.outbox import CHAT, OUTBOX, ClaimedMessage, fetch_rows
from bot.models import MessageState, utcnow
from bot.subscriptions import mark_chat_gone, migrate_chat, move_thread_to_main

log = logging.getLogger(__name__)

STAT_NAMES = ("sent", "blocked", "failed", "retried", "rate_limited", "migrated")


@dataclass
class DeliveryStats:
    """What one sender did: messages sent, dropped (chat blocked or gone), failed, retried."""

    sent: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0  # 429 answers
    migrated: int = 0
    elapsed: float = 0.0

    def add(self, other: DeliveryStats) -> None:
        for name in STAT_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))


# What the loop decided for one claimed message, for the store to write.
@dataclass(frozen=True)
class SentRecord:
    msg: ClaimedMessage
    telegram_message_id: int
    at: datetime


@dataclass(frozen=True)
class UnconfirmedRecord:
    """No answer, but Telegram may have delivered it: stored as sent, never sent again."""

    msg: ClaimedMessage
    at: datetime
    reason: str


@dataclass(frozen=True)
class RetryRecord:
    """Back to the queue until `at`; `count_attempt` for transient errors, not for 429."""

    msg: ClaimedMessage
    at: datetime
    reason: str
    count_attempt: bool


@dataclass(frozen=True)
class FailedRecord:
    msg: ClaimedMessage
    reason: str


@dataclass(frozen=True)
class ChatGoneRecord:
    msg: ClaimedMessage
    reason: str


@dataclass(frozen=True)
class MigratedRecord:
    msg: ClaimedMessage
    new_telegram_id: int


@dataclass(frozen=True)
class TopicGoneRecord:
    """The forum topic is closed or deleted: the message goes to the main thread instead."""

    msg: ClaimedMessage


@dataclass(frozen=True)
class ReleasedRecord:
    """Claimed but not sent (the sender is stopping): back to the queue."""

    msg: ClaimedMessage


Record = (
    SentRecord
    | UnconfirmedRecord
    | RetryRecord
    | FailedRecord
    | ChatGoneRecord
    | MigratedRecord
    | TopicGoneRecord
    | ReleasedRecord
)


async def _pace_chats(
    session: AsyncSession, limits: DeliveryLimits, sends: list[tuple[ClaimedMessage, datetime]]
) -> None:
    """Frees each chat for its next message one interval (1 s, 3 s for groups) after `at`."""
    private = timedelta(seconds=limits.private_interval)
    group = timedelta(seconds=limits.group_interval)
    await _set_next_send(
        session, [(msg.chat_id, at + (group if msg.is_group else private)) for msg, at in sends]
    )


async def store_outcomes(
    sessions: SessionFactory, batch: list[Record], limits: DeliveryLimits
) -> DeliveryStats:
    """Writes a batch of outcomes in one transaction; returns what they count for."""
    stats = DeliveryStats()
    sent = [o for o in batch if isinstance(o, SentRecord)]
    unconfirmed = [o for o in batch if isinstance(o, UnconfirmedRecord)]
    retries = [o for o in batch if isinstance(o, RetryRecord)]
    failed = [o for o in batch if isinstance(o, FailedRecord)]
    released = [o for o in batch if isinstance(o, ReleasedRecord)]
    gone = [o for o in batch if isinstance(o, ChatGoneRecord)]
    migrated = [o for o in batch if isinstance(o, MigratedRecord)]
    topics_gone = [o for o in batch if isinstance(o, TopicGoneRecord)]
    mine = and_(
        OUTBOX.c.id == bindparam("b_id"),
        OUTBOX.c.state == MessageState.sending.value,
        OUTBOX.c.claimed_until == bindparam("b_lease"),
    )
    async with sessions() as session:
        if sent or unconfirmed:
            # one UPDATE for both: a sent one gets its message id and keeps its last error
            # (b_reason NULL), an unconfirmed one has no id and says why (last_error)
            delivered = [(o.msg, o.at, o.telegram_message_id, None) for o in sent] + [
                (o.msg, o.at, None, o.reason) for o in unconfirmed
            ]
            reason = bindparam("b_reason", type_=OUTBOX.c.last_error.type)
            await session.exec(
                update(OUTBOX)
                .where(OUTBOX.c.id == bindparam("b_id"))
                .values(
                    state=MessageState.sent.value,
                    sent_at=bindparam("b_at"),
                    telegram_message_id=bindparam("b_mid"),
                    last_error=func.coalesce(reason, OUTBOX.c.last_error),
                    claimed_until=None,
                ),
                params=[
                    {"b_id": msg.id, "b_at": at, "b_mid": mid, "b_reason": why}
                    for msg, at, mid, why in delivered
                ],
            )
            # the chat's next message: the chat's interval after this one really went
            await _pace_chats(session, limits, [(msg, at) for msg, at, _, _ in delivered])
            stats.sent += len(delivered)
        if retries:
            await session.exec(
                update(OUTBOX)
                .where(mine)
                .values(
                    state=MessageState.queued.value,
                    not_before=bindparam("b_at"),
                    attempts=bindparam("b_attempts"),
                    last_error=bindparam("b_reason"),
                    claimed_until=None,
                ),
                params=[
                    {
                        "b_id": o.msg.id,
                        "b_lease": o.msg.claimed_until,
                        "b_at": o.at,
                        "b_attempts": o.msg.attempts + (1 if o.count_attempt else 0),
                        "b_reason": o.reason,
                    }
                    for o in retries
                ],
            )
            # the chat waits too, and its later messages wait behind this one (same
            # not_before, higher id), so a retried message is never overtaken
            retry_params = [{"b_chat": o.msg.chat_id, "b_at": o.at} for o in retries]
            await session.exec(
                update(CHAT)
                .where(CHAT.c.id == bindparam("b_chat"))
                .values(next_send_at=bindparam("b_at")),
                params=retry_params,
            )
            await session.exec(
                update(OUTBOX)
                .where(
                    OUTBOX.c.chat_id == bindparam("b_chat"),
                    OUTBOX.c.state == MessageState.queued.value,
                    OUTBOX.c.not_before < bindparam("b_at"),
                )
                .values(not_before=bindparam("b_at")),
                params=retry_params,
            )
            stats.retried += len(retries)
            stats.rate_limited += sum(1 for o in retries if not o.count_attempt)
        if failed:
            await session.exec(
                update(OUTBOX)
                .where(mine)
                .values(
                    state=MessageState.failed.value,
                    attempts=bindparam("b_attempts"),
                    last_error=bindparam("b_reason"),
                    claimed_until=None,
                ),
                params=[
                    {
                        "b_id": o.msg.id,
                        "b_lease": o.msg.claimed_until,
                        "b_attempts": o.msg.attempts + 1,
                        "b_reason": o.reason,
                    }
                    for o in failed
                ],
            )
            await _pace_chats(session, limits, [(o.msg, utcnow()) for o in failed])
            stats.failed += len(failed)
        if released:
            await session.exec(
                update(OUTBOX)
                .where(mine)
                .values(state=MessageState.queued.value, claimed_until=None),
                params=[{"b_id": o.msg.id, "b_lease": o.msg.claimed_until} for o in released],
            )
            await session.exec(
                update(CHAT).where(CHAT.c.id == bindparam("b_chat")).values(next_send_at=None),
                params=[{"b_chat": o.msg.chat_id} for o in released],
            )
        for gone_chat in gone:
            stats.blocked += await mark_chat_gone(session, gone_chat.msg.chat_id, gone_chat.reason)
        for move in migrated:
            await _migrate_chat(session, move.msg, move.new_telegram_id)
            stats.migrated += 1
        for topic in topics_gone:
            # moves this message too (it is unsent); its not_before keeps its place in line
            await move_thread_to_main(session, topic.msg.chat_id, topic.msg.thread_id)
            await session.exec(
                update(OUTBOX)
                .where(mine)
                .values(state=MessageState.queued.value, claimed_until=None),
                params=[{"b_id": topic.msg.id, "b_lease": topic.msg.claimed_until}],
            )
        if topics_gone:  # a refused send is no message to pace for, as for a migration
            await session.exec(
                update(CHAT).where(CHAT.c.id == bindparam("b_chat")).values(next_send_at=None),
                params=[{"b_chat": o.msg.chat_id} for o in topics_gone],
            )
        await session.commit()
    if gone:
        log.info("%d chats blocked the bot or are gone; their messages were dropped", len(gone))
    return stats


async def _set_next_send(session: AsyncSession, times: list[tuple[int, datetime]]) -> None:
    if times:
        await session.exec(
            update(CHAT)
            .where(CHAT.c.id == bindparam("b_chat"))
            .values(next_send_at=bindparam("b_next")),
            params=[{"b_chat": chat_id, "b_next": at} for chat_id, at in times],
        )


async def _migrate_chat(session: AsyncSession, msg: ClaimedMessage, new_telegram_id: int) -> None:
    """The group became a supergroup (bot.subscriptions.migrate_chat), and the message goes
    back to the queue to be sent there."""
    target = await migrate_chat(session, msg.telegram_chat_id, new_telegram_id) or msg.chat_id
    # its not_before is kept (it was due): a new one would put it behind the chat's later
    # messages, and a digest's "(1/3)" would arrive after "(3/3)"
    await session.exec(
        update(OUTBOX)
        .where(OUTBOX.c.id == msg.id)
        .values(state=MessageState.queued.value, claimed_until=None)
    )
    await session.exec(update(CHAT).where(CHAT.c.id == target).values(next_send_at=None))


async def renew_leases(
    sessions: SessionFactory, held: list[ClaimedMessage], until: datetime
) -> list[int]:
    """Moves the claims on `held` (and the hold on their chats) to `until`: the heartbeat.

    A claim that is no longer this sender's (its lease ran out and another took it) is not
    touched; the ids of those renewed are returned.
    """
    if not held:
        return []
    async with sessions() as session:
        await session.exec(
            update(OUTBOX)
            .where(
                OUTBOX.c.id == bindparam("b_id"),
                OUTBOX.c.state == MessageState.sending.value,
                OUTBOX.c.claimed_until == bindparam("b_lease"),
            )
            .values(claimed_until=until),
            params=[{"b_id": m.id, "b_lease": m.claimed_until} for m in held],
        )
        # `until` is this heartbeat's own instant: the rows that have it are the renewed ones
        found = await fetch_rows(
            session,
            select(OUTBOX.c.id, OUTBOX.c.chat_id).where(
                OUTBOX.c.id.in_([m.id for m in held]), OUTBOX.c.claimed_until == until
            ),
        )
        renewed = [row[0] for row in found]
        if found:
            # the chat stays held while its message is in flight (see claim_due_messages)
            await session.exec(
                update(CHAT)
                .where(CHAT.c.id.in_([row[1] for row in found]), CHAT.c.next_send_at < until)
                .values(next_send_at=until)
            )
        await session.commit()
    return renewed


__all__ = [
    "ChatGoneRecord",
    "DeliveryStats",
    "FailedRecord",
    "MigratedRecord",
    "Record",
    "ReleasedRecord",
    "RetryRecord",
    "SentRecord",
    "TopicGoneRecord",
    "UnconfirmedRecord",
    "renew_leases",
    "store_outcomes",
]
