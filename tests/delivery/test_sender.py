"""The sender against the Bot API double: exactly once, within limits, every Telegram error."""

from __future__ import annotations

import time
from collections import Counter
from datetime import time as dt_time
from itertools import pairwise

from sqlmodel import select

from bot.delivery.outbox import enqueue, queue_counts
from bot.delivery.telegram_transport import TelegramTransport
from bot.models import Chat, MessageKind, MessageState, Subscription, Topic
from tests.delivery.helpers import add_chats, chat_by_id, outbox, queue_text
from tests.doubles.telegram_api import BotAPIDouble


async def test_500_chats_each_get_their_message_exactly_once(any_sessions, api, make_sender):
    chats = await add_chats(any_sessions, list(range(1000, 1500)))
    await queue_text(any_sessions, chats, lambda c: f"<b>Hello</b> chat {c.telegram_id} &amp; co")

    stats = await make_sender(send_rate=1000)(any_sessions).drain(timeout=60)

    assert stats.sent == 500
    assert sorted(m.chat_id for m in api.sent) == list(range(1000, 1500))
    assert all(m.text == f"Hello chat {m.chat_id} & co" for m in api.sent)
    assert all(m.parse_mode == "HTML" and m.link_preview_disabled for m in api.sent)
    counts = await queue_counts(any_sessions)
    assert counts["sent"] == 500 and counts["queued"] == counts["sending"] == 0
    rows = await outbox(any_sessions)
    assert all(r.telegram_message_id and r.sent_at for r in rows)


async def test_under_telegram_flood_limits_everyone_gets_it_once_with_few_429s(
    sessions, make_sender
):
    async with BotAPIDouble(flood_limits=True) as api:
        from bot.config import Settings
        from bot.delivery.sender import Sender
        from tests.delivery.helpers import limits, make_bot

        chats = await add_chats(sessions, list(range(2000, 2200)))
        await queue_text(sessions, chats, "<i>digest</i>")
        async with make_bot(api) as bot:
            telegram_limits = limits(send_rate=30, private_interval=1.0)
            sender = Sender(
                sessions, TelegramTransport(bot), Settings(send_rate=30), limits=telegram_limits
            )
            started = time.monotonic()
            stats = await sender.drain(timeout=60)
            elapsed = time.monotonic() - started

    assert Counter(m.chat_id for m in api.sent) == Counter(range(2000, 2200))
    assert stats.sent == 200
    assert api.flood_429_count <= 2
    assert elapsed >= 200 / 30 - 1.5  # it did not go faster than SEND_RATE


async def test_messages_to_one_private_chat_are_a_second_apart(sessions):
    from bot.config import Settings
    from bot.delivery.sender import Sender
    from tests.delivery.helpers import limits, make_bot

    async with BotAPIDouble(flood_limits=True, chat_burst=1) as api:
        (chat,) = await add_chats(sessions, [42])
        for n in range(5):
            await queue_text(sessions, [chat], f"part {n}")
        async with make_bot(api) as bot:
            telegram_pacing = limits(private_interval=1.0)
            await Sender(
                sessions, TelegramTransport(bot), Settings(), limits=telegram_pacing
            ).drain(timeout=30)

    sent = api.messages_to(42)
    assert [m.text for m in sent] == [f"part {n}" for n in range(5)]  # in order, once each
    gaps = [b.at - a.at for a, b in pairwise(sent)]
    assert min(gaps) >= 0.95
    assert api.flood_429_count == 0


async def test_a_group_gets_no_more_than_its_per_minute_limit_without_429s(sessions):
    from bot.config import Settings
    from bot.delivery.sender import Sender
    from tests.delivery.helpers import limits, make_bot

    # the double's clock runs 20x fast: its minute is 3 s, 3 a minute = one a second of ours
    async with BotAPIDouble(
        flood_limits=True, group_per_minute=3, clock=lambda: time.monotonic() * 20
    ) as api:
        (group,) = await add_chats(sessions, [-100777])
        for n in range(4):
            await queue_text(sessions, [group], f"group part {n}")
        async with make_bot(api) as bot:
            group_limits = limits(private_interval=0.05, group_per_minute=60)
            await Sender(sessions, TelegramTransport(bot), Settings(), limits=group_limits).drain(
                timeout=30
            )

    sent = api.messages_to(-100777)
    assert [m.text for m in sent] == [f"group part {n}" for n in range(4)]
    assert api.flood_429_count == 0


async def test_retry_after_is_honoured_and_costs_no_attempt(sessions, api, make_sender):
    (chat,) = await add_chats(sessions, [7])
    await queue_text(sessions, [chat], "after the flood")
    api.fail_next("sendMessage", status=429, retry_after=1)

    stats = await make_sender()(sessions).drain(timeout=30)

    calls = api.calls_to("sendMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0
    assert [m.text for m in api.messages_to(7)] == ["after the flood"]
    (row,) = await outbox(sessions)
    assert row.state == MessageState.sent and row.attempts == 0
    assert stats.rate_limited == 1


async def test_a_blocked_chat_becomes_inactive_and_its_queue_is_dropped(sessions, api, make_sender):
    blocked, fine = await add_chats(sessions, [11, 12])
    for n in range(3):
        await queue_text(sessions, [blocked, fine], f"news {n}")
    api.block_chat(11)

    stats = await make_sender()(sessions).drain(timeout=30)

    assert len(api.calls_to("sendMessage")) == 1 + 3  # one try for the blocked chat
    assert [m.text for m in api.messages_to(12)] == ["news 0", "news 1", "news 2"]
    assert (await chat_by_id(sessions, blocked.id)).active is False
    dropped = [r for r in await outbox(sessions) if r.chat_id == blocked.id]
    assert {r.state for r in dropped} == {MessageState.dropped}
    assert "blocked" in (dropped[0].last_error or "")
    assert stats.blocked == 3

    # later messages to it are not even tried
    await queue_text(sessions, [blocked], "still there?")
    await make_sender()(sessions).drain(timeout=10)
    assert len(api.calls_to("sendMessage")) == 4


async def test_chat_not_found_is_treated_like_a_blocked_chat(sessions, api, make_sender):
    (gone,) = await add_chats(sessions, [-555])
    await queue_text(sessions, [gone], "hello?")
    await queue_text(sessions, [gone], "anyone?")
    api.delete_chat(-555)

    await make_sender()(sessions).drain(timeout=30)

    assert (await chat_by_id(sessions, gone.id)).active is False
    assert {r.state for r in await outbox(sessions)} == {MessageState.dropped}
    assert len(api.calls_to("sendMessage")) == 1


async def test_a_migrated_group_moves_to_its_new_id(sessions, api, make_sender):
    (group,) = await add_chats(sessions, [-4001])
    await queue_text(sessions, [group], "before the move")
    api.migrate_chat(-4001, -1004001)

    await make_sender()(sessions).drain(timeout=30)

    moved = await chat_by_id(sessions, group.id)
    assert moved.telegram_id == -1004001 and moved.type == "supergroup" and moved.active
    assert [m.text for m in api.messages_to(-1004001)] == ["before the move"]
    await queue_text(sessions, [moved], "after the move")
    await make_sender()(sessions).drain(timeout=30)
    assert [m.text for m in api.messages_to(-1004001)] == ["before the move", "after the move"]
    assert api.messages_to(-4001) == []


async def test_a_migrated_group_merges_into_an_existing_row_for_the_new_id(
    sessions, api, make_sender
):
    old, new = await add_chats(sessions, [-4002, -1004002])
    async with sessions() as s:
        configured = await s.get(Chat, old.id)
        configured.digest_time = dt_time(7, 15)  # what the group chose before it migrated
        s.add(configured)
        customs, excise = (
            Topic(query="customs", label="customs"),
            Topic(query="excise", label="excise"),
        )
        s.add_all([customs, excise])
        await s.flush()
        s.add_all(
            [
                Subscription(chat_id=old.id, topic_id=customs.id, query_text="customs"),
                Subscription(chat_id=old.id, topic_id=excise.id, query_text="excise"),
                Subscription(chat_id=new.id, topic_id=customs.id, query_text="customs"),
            ]
        )
        await s.commit()
    await queue_text(sessions, [old], "to the old id")
    api.migrate_chat(-4002, -1004002)

    await make_sender()(sessions).drain(timeout=30)

    assert [m.text for m in api.messages_to(-1004002)] == ["to the old id"]
    async with sessions() as s:
        (merged,) = (
            await s.exec(select(Chat).where(Chat.telegram_id.in_([-4002, -1004002])))
        ).all()
        subs = (await s.exec(select(Subscription).where(Subscription.chat_id == merged.id))).all()
    # one chat with the old group's settings and every topic of both rows, once each
    assert merged.telegram_id == -1004002 and merged.digest_time == dt_time(7, 15)
    assert sorted(sub.query_text for sub in subs) == ["customs", "excise"]


async def test_server_errors_are_retried_with_backoff(sessions, api, make_sender):
    (chat,) = await add_chats(sessions, [21])
    await queue_text(sessions, [chat], "eventually")
    api.fail_next("sendMessage", status=500, times=2)

    stats = await make_sender(backoff_base=0.2)(sessions).drain(timeout=30)

    calls = api.calls_to("sendMessage")
    assert [c.status for c in calls] == [500, 500, 200]
    assert calls[1].at - calls[0].at >= 0.1  # base 0.2 s, jittered down to half at most
    assert calls[2].at - calls[1].at >= 0.2  # doubled
    (row,) = await outbox(sessions)
    assert row.state == MessageState.sent and row.attempts == 2
    assert stats.sent == 1 and stats.retried == 2


async def test_persistent_server_errors_end_in_failed_with_the_reason(sessions, api, make_sender):
    (chat,) = await add_chats(sessions, [22])
    await queue_text(sessions, [chat], "never")
    api.fail_next("sendMessage", status=502, description="Bad Gateway", times=100)

    stats = await make_sender(backoff_base=0.01, max_attempts=4)(sessions).drain(timeout=30)

    assert len(api.calls_to("sendMessage")) == 4
    (row,) = await outbox(sessions)
    assert row.state == MessageState.failed and "Bad Gateway" in (row.last_error or "")
    assert stats.failed == 1


async def test_bad_html_fails_at_once_with_telegrams_reason(sessions, api, make_sender):
    (chat,) = await add_chats(sessions, [31])
    async with sessions() as s:
        await enqueue(s, chat.id, "<p>not Telegram HTML</p>", kind=MessageKind.notice)
        await s.commit()

    stats = await make_sender()(sessions).drain(timeout=30)

    assert len(api.calls_to("sendMessage")) == 1
    (row,) = await outbox(sessions)
    assert row.state == MessageState.failed
    assert "can't parse entities" in (row.last_error or "").lower()
    assert stats.failed == 1
    assert (await chat_by_id(sessions, chat.id)).active  # the chat is fine


async def test_forum_topics_get_message_thread_id(sessions, api, make_sender):
    (forum,) = await add_chats(sessions, [-1009])
    await queue_text(sessions, [forum], "in topic 5", thread_id=5)
    await queue_text(sessions, [forum], "in the chat")

    await make_sender()(sessions).drain(timeout=30)

    assert [m.text for m in api.messages_to(-1009, thread_id=5)] == ["in topic 5"]
    assert [m.message_thread_id for m in api.messages_to(-1009)] == [5, None]
    async with sessions() as s:
        assert (await s.exec(select(Chat))).one().active


async def test_a_retried_message_is_not_overtaken_by_the_chats_next_one(sessions, api, make_sender):
    (chat,) = await add_chats(sessions, [23])
    for n in range(3):
        await queue_text(sessions, [chat], f"part {n}")
    api.fail_next("sendMessage", status=500)

    await make_sender(backoff_base=0.3)(sessions).drain(timeout=30)

    assert [m.text for m in api.messages_to(23)] == ["part 0", "part 1", "part 2"]


async def test_stopping_mid_stream_records_every_message_telegram_accepted(
    any_sessions, api, make_sender, db_url
):
    """A SIGTERM while claims and sends are in flight: what went out is 'sent', the rest queued.

    Big claims at a high rate, so the stop lands inside a claim or a write: a transaction cut
    off there used to keep SQLite's write lock, and the final flush failed for minutes.
    """
    import asyncio

    chats = await add_chats(any_sessions, list(range(3000, 5000)))
    await queue_text(any_sessions, chats, "<b>Maintenance</b> tonight")
    sender = make_sender(send_rate=3000, concurrency=12)(any_sessions)
    stop = asyncio.Event()
    running = asyncio.create_task(sender.run(stop))
    await api.wait_for(lambda: len(api.sent) >= 300, timeout=20)

    stop.set()
    await asyncio.wait_for(running, timeout=15)

    counts = await queue_counts(any_sessions)
    assert counts["sending"] == 0
    assert counts["sent"] == len(api.sent)
    assert counts["queued"] == 2000 - len(api.sent)
    # and a later run sends exactly the rest
    await make_sender(send_rate=3000)(any_sessions).drain(timeout=60)
    assert sorted(m.chat_id for m in api.sent) == list(range(3000, 5000))


async def test_a_migrated_group_gets_its_queued_parts_in_order(sessions, api, make_sender):
    (group,) = await add_chats(sessions, [-4003])
    await queue_text(sessions, [group], "(1/3)")
    await queue_text(sessions, [group], "(2/3)")
    await queue_text(sessions, [group], "(3/3)")
    api.migrate_chat(-4003, -1004003)

    await make_sender()(sessions).drain(timeout=30)

    assert [m.text for m in api.messages_to(-1004003)] == ["(1/3)", "(2/3)", "(3/3)"]


async def test_a_chat_that_reuses_the_id_of_a_merged_group_gets_its_first_digest(
    sessions, api, make_sender
):
    # SQLite hands a deleted row's id (if it was the highest) to the next chat; the merged
    # group's outbox rows must not keep dedup keys that would swallow that chat's messages
    await add_chats(sessions, [-1004004])  # the supergroup already has a row
    (old,) = await add_chats(sessions, [-4004])
    async with sessions() as s:
        await enqueue(
            s,
            old.id,
            "old group's digest",
            kind=MessageKind.digest,
            dedup_key=f"digest:{old.id}:0:first",
        )
        await s.commit()
    api.migrate_chat(-4004, -1004004)
    await make_sender()(sessions).drain(timeout=30)
    assert [m.text for m in api.messages_to(-1004004)] == ["old group's digest"]

    (someone,) = await add_chats(sessions, [4005])
    async with sessions() as s:
        queued = await enqueue(
            s,
            someone.id,
            "your first digest",
            kind=MessageKind.digest,
            dedup_key=f"digest:{someone.id}:0:first",
        )
        await s.commit()
    await make_sender()(sessions).drain(timeout=30)

    assert queued
    assert [m.text for m in api.messages_to(4005)] == ["your first digest"]
