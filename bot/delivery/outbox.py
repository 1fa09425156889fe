"""The outbox: one durable queue of every outgoing message, shared by any number of senders.

A message is `queued` until a sender claims it (`sending`, with a lease in `claimed_until`),
then `sent`, `failed` or `dropped`. A claim is a lease: if the sender dies, the row becomes
claimable again once `claimed_until` has passed, so a crash loses nothing and re-sends at
most what was in flight. Per-chat pacing lives in `chat.next_send_at`, so several sender
processes on PostgreSQL (`FOR UPDATE SKIP LOCKED`) share one queue without talking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    Integer,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.sql.dml import Insert
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import (
    SessionFactory,
    chunks,
    dialect_of,
    insert_ignoring_conflicts,
    lock_for_claim,
    pg_array,
)
from bot.models import PRIORITY, MessageKind, MessageState, metadata, utcnow

OUTBOX: Table = metadata.tables["outbox"]
CHAT: Table = metadata.tables["chat"]

AnyRow = tuple[Any, ...]
GROUP_TYPES = ("group", "supergroup", "channel")


@dataclass(slots=True)  # not frozen: a rush builds a million, and frozen costs twice the time
class OutboxRow:
    """One message for `enqueue_many`; chat_id is Chat.id (our row id)."""

    chat_id: int
    text: str
    kind: MessageKind
    thread_id: int = 0
    broadcast_id: int | None = None
    dedup_key: str | None = None
    not_before: datetime | None = None
    reply_markup: str | None = None  # Bot API JSON of the message's buttons


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message a sender holds until `claimed_until`, with what it needs to send it."""

    id: int
    chat_id: int  # Chat.id
    telegram_chat_id: int
    chat_type: str
    thread_id: int
    text: str
    kind: str
    attempts: int
    broadcast_id: int | None
    claimed_until: datetime
    reply_markup: str | None = None

    @property
    def is_group(self) -> bool:
        return is_group_chat(self.chat_type, self.telegram_chat_id)


def is_group_chat(chat_type: str, telegram_id: int) -> bool:
    """Groups, supergroups and channels (negative Telegram ids) get the 20-a-minute limit."""
    return chat_type in GROUP_TYPES or telegram_id < 0


def _insert_ignoring_duplicates(session: AsyncSession) -> Insert:
    """INSERT … ON CONFLICT (dedup_key) DO NOTHING in the session's dialect."""
    return insert_ignoring_conflicts(dialect_of(session), OUTBOX, ["dedup_key"])


# what a queued row takes from its OutboxRow, column by column: the one mapping, used row by
# row (`_row_values`) and column by column (`_insert_unnest`)
_FROM_ROW: dict[str, Callable[[OutboxRow], Any]] = {
    "chat_id": attrgetter("chat_id"),
    "thread_id": attrgetter("thread_id"),
    "kind": lambda row: str(row.kind),
    "priority": lambda row: PRIORITY[row.kind],
    "reply_markup": attrgetter("reply_markup"),
    "broadcast_id": attrgetter("broadcast_id"),
    "dedup_key": attrgetter("dedup_key"),
}


def _same_for_all(now: datetime) -> dict[str, Any]:
    """The columns every row queued at `now` starts with."""
    return {"state": MessageState.queued.value, "attempts": 0, "created_at": now}


def _row_values(row: OutboxRow, now: datetime) -> dict[str, Any]:
    values = {name: get(row) for name, get in _FROM_ROW.items()}
    values.update(_same_for_all(now), text=row.text, not_before=row.not_before or now)
    return values


async def enqueue(
    session: AsyncSession,
    chat_id: int,
    text: str,
    *,
    kind: MessageKind,
    thread_id: int = 0,
    broadcast_id: int | None = None,
    dedup_key: str | None = None,
    not_before: datetime | None = None,
) -> bool:
    """Queues one message in the caller's transaction (not committed here).

    False when a message with the same `dedup_key` is already in the outbox.
    """
    row = OutboxRow(chat_id, text, kind, thread_id, broadcast_id, dedup_key, not_before)
    stmt = (
        _insert_ignoring_duplicates(session)
        .values(_row_values(row, utcnow()))
        .returning(OUTBOX.c.id)
    )
    result = await session.exec(stmt)
    return result.first() is not None


async def enqueue_many(session: AsyncSession, rows: Sequence[OutboxRow]) -> list[str | None]:
    """Queues many messages in the caller's transaction, in chunks.

    Returns the dedup keys of the rows really inserted (None for rows without one): a row
    whose key another transaction queued first is not among them.
    """
    now = utcnow()
    inserted: list[str | None] = []
    postgres = dialect_of(session) == "postgresql"
    for rows_chunk in chunks(rows):
        insert = _insert_ignoring_duplicates(session)
        if postgres:
            stmt = _insert_unnest(insert, rows_chunk, now).returning(OUTBOX.c.dedup_key)
            inserted.extend((await session.exec(stmt)).scalars())
        else:  # executemany: compiled once, sent in batches (SQLAlchemy's insertmanyvalues)
            chunk = [_row_values(row, now) for row in rows_chunk]
            connection = await session.connection()
            result = await connection.execute(insert.returning(OUTBOX.c.dedup_key), chunk)
            inserted.extend(result.scalars())
    return inserted


def _insert_unnest(insert: Insert, rows: Sequence[OutboxRow], now: datetime) -> Insert:
    """PostgreSQL: INSERT … SELECT FROM unnest(one array per column), one statement of a dozen
    parameters whatever the chunk's size (a multi-row VALUES has 12 a row to compile and bind).

    Each distinct text is sent once: in a rush most digests are the same few thousand texts
    (a broadcast is one), and a text is kilobytes where the rest of a row is a few dozen bytes.
    What every row has alike (state, attempts, created_at) is one value, not an array. Rows go
    in in the order given (their ids follow it).
    """
    texts: dict[str, int] = {}
    numbers = [texts.setdefault(row.text, len(texts) + 1) for row in rows]
    columns = {name: [get(row) for row in rows] for name, get in _FROM_ROW.items()}
    columns["not_before"] = [row.not_before or now for row in rows]
    names = list(columns)
    arrays = [pg_array(column, OUTBOX.c[name].type) for name, column in columns.items()]
    arrays.append(pg_array(numbers, Integer))
    source = (
        func.unnest(*arrays)
        .table_valued(*names, "text_no", with_ordinality="row_no")
        .render_derived()
    )
    distinct = (
        func.unnest(pg_array(list(texts), OUTBOX.c.text.type))
        .table_valued("text", with_ordinality="text_no")
        .render_derived()
    )
    alike = [
        bindparam(None, value, OUTBOX.c[name].type).label(name)
        for name, value in _same_for_all(now).items()
    ]
    chosen = (
        select(*(source.c[name] for name in names), *alike, distinct.c.text)
        .join_from(source, distinct, distinct.c.text_no == source.c.text_no)
        .order_by(source.c.row_no)
    )
    return insert.from_select([*names, *(a.name for a in alike), "text"], chosen)


async def fetch_rows(session: AsyncSession, stmt: Select[*AnyRow]) -> Sequence[Row[*AnyRow]]:
    """Rows of a Core SELECT in the session's transaction."""
    connection = await session.connection()
    rows: Sequence[Row[*AnyRow]] = (await connection.execute(stmt)).all()
    return rows


def _claim_query(due: Any, now: datetime, limit: int) -> Select[*AnyRow]:
    """Due rows (`due`) of chats free to receive one, in the order they are sent, locked."""
    return (
        select(
            OUTBOX.c.id,
            OUTBOX.c.chat_id,
            OUTBOX.c.thread_id,
            OUTBOX.c.text,
            OUTBOX.c.reply_markup,
            OUTBOX.c.kind,
            OUTBOX.c.attempts,
            OUTBOX.c.broadcast_id,
            CHAT.c.telegram_id,
            CHAT.c.type,
            CHAT.c.active,
        )
        .join(CHAT, CHAT.c.id == OUTBOX.c.chat_id)
        .where(
            due,
            or_(
                CHAT.c.next_send_at.is_(None), CHAT.c.next_send_at <= now, CHAT.c.active.is_(False)
            ),
        )
        # notices first, then instant alerts, digests, broadcasts; within each, first due
        # first: the order of ix_outbox_state_priority_not_before, so no sort of the queue
        .order_by(OUTBOX.c.priority, OUTBOX.c.not_before, OUTBOX.c.id)
        .limit(limit)
        # locking the chat row too keeps two senders from claiming one chat at the same moment
        .with_for_update(of=[OUTBOX, CHAT], skip_locked=True)
    )


def claim_queries(now: datetime, limit: int) -> tuple[Select[*AnyRow], Select[*AnyRow]]:
    """The claim's two reads: leases run out (a sender died: those first), then queued rows.

    Two statements, not one with OR: each walks its index in claim order and stops at
    `limit`, where an OR would sort every due row of a million-row queue.
    """
    expired = and_(OUTBOX.c.state == MessageState.sending.value, OUTBOX.c.claimed_until < now)
    queued = and_(OUTBOX.c.state == MessageState.queued.value, OUTBOX.c.not_before <= now)
    return _claim_query(expired, now, limit), _claim_query(queued, now, limit)


async def claim_due_messages(
    sessions: SessionFactory, limit: int, now: datetime, lease: timedelta
) -> list[ClaimedMessage]:
    """Claims up to `limit` due messages, at most one per chat, of chats free to receive one.

    Sets state=sending and claimed_until=now+lease (expired leases are reclaimed first: crash
    recovery). The chat is held too: its `next_send_at` becomes the lease's end, and the
    sender moves it to "sent at + the chat's interval" once Telegram has answered. So no
    sender, in this process or another, sends to a chat while a message to it is in flight
    or too soon after one, and a chat's messages go out one by one, in order of priority
    (notice, instant alert, digest, broadcast), then of queueing. Messages of inactive
    chats are dropped here instead of sent.
    """
    claimed_until = now + lease
    async with sessions() as session:
        await lock_for_claim(session)
        expired, queued = claim_queries(now, limit * 2)
        rows = [*await fetch_rows(session, expired), *await fetch_rows(session, queued)]
        chosen: list[ClaimedMessage] = []
        inactive_ids: list[int] = []
        seen_chats: set[int] = set()
        for row in rows:
            if row.chat_id in seen_chats:
                continue
            seen_chats.add(row.chat_id)
            if not row.active:
                inactive_ids.append(row.id)
                continue
            if len(chosen) < limit:
                chosen.append(
                    ClaimedMessage(
                        id=row.id,
                        chat_id=row.chat_id,
                        telegram_chat_id=row.telegram_id,
                        chat_type=row.type,
                        thread_id=row.thread_id,
                        text=row.text,
                        kind=row.kind,
                        attempts=row.attempts,
                        broadcast_id=row.broadcast_id,
                        claimed_until=claimed_until,
                        reply_markup=row.reply_markup,
                    )
                )
        if inactive_ids:
            await session.exec(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(inactive_ids))
                .values(
                    state=MessageState.dropped.value,
                    claimed_until=None,
                    last_error="chat is inactive",
                )
            )
        if chosen:
            await session.exec(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_([m.id for m in chosen]))
                .values(state=MessageState.sending.value, claimed_until=claimed_until)
            )
            await session.exec(
                update(CHAT)
                .where(CHAT.c.id.in_([m.chat_id for m in chosen]))
                .values(next_send_at=claimed_until)
            )
        await session.commit()
    return chosen


async def next_due_at(sessions: SessionFactory, now: datetime) -> datetime | None:
    """When the earliest queued or leased message could next be claimed (None: queue empty)."""
    queued_at = case(
        (CHAT.c.next_send_at > OUTBOX.c.not_before, CHAT.c.next_send_at), else_=OUTBOX.c.not_before
    )
    async with sessions() as session:
        first_queued = await fetch_rows(
            session,
            select(func.min(queued_at))
            .select_from(OUTBOX.join(CHAT, CHAT.c.id == OUTBOX.c.chat_id))
            .where(OUTBOX.c.state == MessageState.queued.value),
        )
        first_lease = await fetch_rows(
            session,
            select(func.min(OUTBOX.c.claimed_until)).where(
                OUTBOX.c.state == MessageState.sending.value
            ),
        )
    times = [t for t in (first_queued[0][0], first_lease[0][0]) if t is not None]
    return min(times) if times else None


async def queue_counts(sessions: SessionFactory) -> dict[str, int]:
    """Number of outbox messages in each state (every state present, 0 if none)."""
    async with sessions() as session:
        rows = await fetch_rows(
            session, select(OUTBOX.c.state, func.count()).group_by(OUTBOX.c.state)
        )
    counts = {state.value: 0 for state in MessageState}
    counts.update({row[0]: int(row[1]) for row in rows})
    return counts


async def count_unfinished(sessions: SessionFactory, queued_by: datetime | None = None) -> int:
    """Messages still queued or being sent (with `queued_by`: those queued by then)."""
    stmt = select(func.count()).where(
        OUTBOX.c.state.in_([MessageState.queued.value, MessageState.sending.value])
    )
    if queued_by is not None:
        stmt = stmt.where(OUTBOX.c.created_at <= queued_by)
    async with sessions() as session:
        return int((await fetch_rows(session, stmt))[0][0])
