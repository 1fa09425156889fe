"""The order of a rush: a notice before all, an instant alert before digests, digests in the
order their chats became due (issue 12), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

import bot.digest.service as digest_service
from bot.db import SessionFactory
from bot.delivery.outbox import OutboxRow, claim_due_messages, enqueue_many
from bot.digest.service import queue_due_digests
from bot.models import (
    Chat,
    Match,
    MessageKind,
    MessageState,
    OutboxMessage,
    Release,
    Subscription,
    Topic,
)
from tests.delivery.helpers import add_chats

LEASE = timedelta(seconds=30)
DUE = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # 08:00 in Hong Kong
NOW = DUE + timedelta(seconds=90)


async def _queue(sessions: SessionFactory, chats: list[Chat], kind: MessageKind) -> None:
    async with sessions() as session:
        await enqueue_many(
            session,
            [OutboxRow(chat.id or 0, f"{kind} to {chat.telegram_id}", kind) for chat in chats],
        )
        await session.commit()


async def test_an_alert_queued_after_a_thousand_digests_goes_before_them_and_a_notice_first(
    any_sessions: SessionFactory,
) -> None:
    chats = await add_chats(any_sessions, list(range(1, 1003)))
    digests, alerted, noticed = chats[:1000], chats[1000], chats[1001]
    await _queue(any_sessions, digests, MessageKind.digest)
    await _queue(any_sessions, [alerted], MessageKind.instant)
    await _queue(any_sessions, [noticed], MessageKind.notice)
    now = datetime.now(UTC) + timedelta(seconds=1)

    (first,) = await claim_due_messages(any_sessions, 1, now, LEASE)
    (second,) = await claim_due_messages(any_sessions, 1, now, LEASE)
    (third,) = await claim_due_messages(any_sessions, 1, now, LEASE)

    assert (first.kind, first.telegram_chat_id) == (MessageKind.notice, 1002)
    assert (second.kind, second.telegram_chat_id) == (MessageKind.instant, 1001)
    # then the digests, in the order they were queued
    assert (third.kind, third.telegram_chat_id) == (MessageKind.digest, 1)


async def test_a_chats_own_notice_goes_before_its_queued_digest(
    any_sessions: SessionFactory,
) -> None:
    (chat,) = await add_chats(any_sessions, [7])
    await _queue(any_sessions, [chat], MessageKind.broadcast)
    await _queue(any_sessions, [chat], MessageKind.digest)
    await _queue(any_sessions, [chat], MessageKind.notice)
    kinds = []
    for step in range(3):  # the chat's pacing holds it until its last message is answered
        now = datetime.now(UTC) + timedelta(minutes=1 + step)
        (claimed,) = await claim_due_messages(any_sessions, 5, now, timedelta(seconds=1))
        kinds.append(claimed.kind)
        async with any_sessions() as session:  # as the sender records a message sent
            row = await session.get(OutboxMessage, claimed.id)
            assert row is not None
            row.state = MessageState.sent
            await session.commit()
    assert kinds == [MessageKind.notice, MessageKind.digest, MessageKind.broadcast]


async def test_in_a_rush_the_chats_due_first_are_queued_and_sent_first(
    any_sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digest_service, "CLAIM_BATCH", 2)  # the order holds across batches
    # created (ids) in one order, due at 08:00 in another: due order is what counts
    due_after = [50, 10, 40, 0, 30, 20]  # seconds after 08:00, by chat id
    async with any_sessions() as session:
        topic = Topic(query="customs", label="Customs")
        chats = [
            Chat(telegram_id=100 + n, next_digest_at=DUE + timedelta(seconds=s))
            for n, s in enumerate(due_after)
        ]
        session.add_all([topic, *chats])
        await session.flush()
        release = Release(
            link="https://www.info.gov.hk/gia/general/P1.htm",
            guid="P1",
            title="Customs seizes cigarettes",
            published_at=DUE - timedelta(hours=2),
            content_hash="0" * 64,
            first_seen_at=DUE - timedelta(hours=2),
        )
        session.add(release)
        await session.flush()
        session.add(
            Match(release_id=release.id, topic_id=topic.id, matched_at=DUE - timedelta(hours=2))
        )
        for chat in chats:
            session.add(
                Subscription(
                    chat_id=chat.id,
                    topic_id=topic.id,
                    query_text="customs",
                    created_at=DUE - timedelta(days=3),
                )
            )
        await session.commit()
    by_due = [100 + n for n in sorted(range(len(due_after)), key=lambda n: due_after[n])]

    assert await queue_due_digests(any_sessions, NOW) == len(due_after)

    async with any_sessions() as session:  # each digest waits in line from its due time
        queued = (
            await session.exec(
                select(Chat.telegram_id)
                .join(OutboxMessage, col(OutboxMessage.chat_id) == col(Chat.id))
                .order_by(col(OutboxMessage.not_before), col(OutboxMessage.id))
            )
        ).all()
    assert list(queued) == by_due
    claimed = await claim_due_messages(any_sessions, 6, datetime.now(UTC), LEASE)
    assert [m.telegram_chat_id for m in claimed] == by_due
