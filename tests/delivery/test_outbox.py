"""The outbox: idempotent enqueue in the caller's transaction, claims as leases, per-chat pacing."""

from __future__ import annotations

from datetime import timedelta

from bot.delivery.outbox import claim_due_messages, enqueue, queue_counts
from bot.models import Chat, MessageKind, MessageState, utcnow
from tests.delivery.helpers import add_chats, outbox, queue_text


async def test_enqueue_is_idempotent_on_dedup_key_and_part_of_the_callers_transaction(
    any_sessions,
):
    (chat,) = await add_chats(any_sessions, [1])
    async with any_sessions() as s:
        assert await enqueue(s, chat.id, "digest", kind=MessageKind.digest, dedup_key="d:1:0:x")
        assert not await enqueue(s, chat.id, "again", kind=MessageKind.digest, dedup_key="d:1:0:x")
        await s.rollback()  # the caller's transaction failed: nothing was queued
    assert await outbox(any_sessions) == []

    async with any_sessions() as s:
        assert await enqueue(s, chat.id, "digest", kind=MessageKind.digest, dedup_key="d:1:0:x")
        await s.commit()
    async with any_sessions() as s:
        assert not await enqueue(s, chat.id, "dup", kind=MessageKind.digest, dedup_key="d:1:0:x")
        assert await enqueue(s, chat.id, "no key", kind=MessageKind.notice)
        assert await enqueue(s, chat.id, "no key", kind=MessageKind.notice)
        await s.commit()
    assert [r.text for r in await outbox(any_sessions)] == ["digest", "no key", "no key"]


async def test_a_claim_takes_one_message_per_chat_and_holds_the_chat(any_sessions):
    a, b = await add_chats(any_sessions, [1, -2])
    await queue_text(any_sessions, [a, b], "first")
    await queue_text(any_sessions, [a, b], "second")
    now = utcnow()

    claimed = await claim_due_messages(any_sessions, 10, now, timedelta(seconds=30))

    assert sorted((m.telegram_chat_id, m.text) for m in claimed) == [(-2, "first"), (1, "first")]
    assert all(m.claimed_until == now + timedelta(seconds=30) for m in claimed)
    async with any_sessions() as s:  # the chats are held until the sender has sent
        assert (await s.get(Chat, a.id)).next_send_at == now + timedelta(seconds=30)
        assert (await s.get(Chat, b.id)).next_send_at == now + timedelta(seconds=30)
    # the chats' second messages wait for the first to finish and for the chats' pacing
    assert await claim_due_messages(any_sessions, 10, now, timedelta(seconds=30)) == []
    counts = await queue_counts(any_sessions)
    assert counts["sending"] == 2 and counts["queued"] == 2


async def test_an_expired_lease_is_claimed_again(any_sessions):
    (chat,) = await add_chats(any_sessions, [1])
    await queue_text(any_sessions, [chat], "in flight when the sender died")
    start = utcnow()
    (first,) = await claim_due_messages(any_sessions, 10, start, timedelta(seconds=5))

    lease = timedelta(seconds=5)
    assert await claim_due_messages(any_sessions, 10, start + timedelta(seconds=4), lease) == []
    (again,) = await claim_due_messages(
        any_sessions, 10, start + timedelta(seconds=6), timedelta(seconds=5)
    )
    assert again.id == first.id
    (row,) = await outbox(any_sessions)
    assert row.state == MessageState.sending


async def test_messages_of_inactive_chats_are_dropped_not_claimed(any_sessions):
    (chat,) = await add_chats(any_sessions, [1])
    await queue_text(any_sessions, [chat], "too late")
    async with any_sessions() as s:
        row = await s.get(Chat, chat.id)
        row.active = False
        await s.commit()

    assert await claim_due_messages(any_sessions, 10, utcnow(), timedelta(seconds=5)) == []
    assert (await queue_counts(any_sessions))["dropped"] == 1
