"""Queueing digests and instant alerts into the outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TypeVar

import pytest
from sqlmodel import col, select

from bot.db import SessionFactory
from bot.delivery.html import check_telegram_html, visible_length, visible_text
from bot.digest.service import (
    MATCH_SETTLE,
    queue_digest_now,
    queue_due_digests,
    queue_instant_alerts,
)
from bot.models import (
    Chat,
    Frequency,
    Match,
    MessageKind,
    OutboxMessage,
    Release,
    Subscription,
    Topic,
)

RowT = TypeVar("RowT", Chat, Topic, Subscription, Release, Match)

# 08:00:30 in Hong Kong: chats scheduled at 08:00 HKT (the default) are due
NOW = datetime(2026, 11, 28, 0, 0, 30, tzinfo=UTC)
DUE = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
TOMORROW = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
SUBSCRIBED = NOW - timedelta(days=2)


@dataclass
class World:
    """Rows the tests create directly, as matching and the Telegram layer would."""

    sessions: SessionFactory
    telegram_ids: int = 1000
    release_numbers: int = 0

    async def chat(self, **settings: object) -> Chat:
        self.telegram_ids += 1
        values: dict[str, object] = {"next_digest_at": DUE, "created_at": SUBSCRIBED, **settings}
        row = Chat(telegram_id=self.telegram_ids, **values)  # type: ignore[arg-type]
        return await self._add(row)

    async def topic(self, query: str, label: str | None = None) -> Topic:
        return await self._add(Topic(query=query, label=label or query.title()))

    async def follow(
        self, chat: Chat, topic: Topic, *, thread_id: int = 0, at: datetime = SUBSCRIBED
    ) -> None:
        assert chat.id is not None and topic.id is not None
        sub = Subscription(
            chat_id=chat.id, thread_id=thread_id, topic_id=topic.id, query_text=topic.query
        )
        sub.created_at = at
        await self._add(sub)

    async def release(
        self,
        title: str,
        *topics: Topic,
        seen: datetime = NOW - timedelta(hours=1),
        published: datetime | None = None,
        announce: bool = True,
        in_title: tuple[Topic, ...] = (),
    ) -> Release:
        self.release_numbers += 1
        n = self.release_numbers
        row = Release(
            link=f"https://www.info.gov.hk/gia/general/P{n:06d}.htm",
            guid=f"P{n:06d}",
            title=title,
            summary=f"Summary of {title}.",
            published_at=published or seen,
            content_hash=f"{n:064d}",
            first_seen_at=seen,
            announce=announce,
        )
        release = await self._add(row)
        assert release.id is not None
        for topic in topics:
            assert topic.id is not None
            await self._add(
                Match(
                    release_id=release.id,
                    topic_id=topic.id,
                    in_title=topic in in_title,
                    matched_at=seen,  # matched as it is stored
                )
            )
        return release

    async def _add(self, row: RowT) -> RowT:
        async with self.sessions() as session:
            session.add(row)
            await session.commit()
            await session.refresh(row)
            return row

    async def outbox(self) -> list[OutboxMessage]:
        async with self.sessions() as session:
            return list(
                (await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
            )

    async def reload(self, chat: Chat) -> Chat:
        async with self.sessions() as session:
            row = await session.get(Chat, chat.id)
            assert row is not None
            return row


@pytest.fixture
def world(any_sessions: SessionFactory) -> World:
    return World(any_sessions)


def utc(moment: datetime | None) -> datetime | None:
    """SQLite may hand back naive datetimes; the tests compare in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


async def test_due_chat_gets_its_digest_once_even_when_the_tick_runs_twice(world: World) -> None:
    chat = await world.chat()
    customs = await world.topic("customs")
    await world.follow(chat, customs)
    await world.release("Customs seizes cigarettes", customs)

    assert await queue_due_digests(world.sessions, NOW) == 1
    assert await queue_due_digests(world.sessions, NOW) == 0
    assert await queue_due_digests(world.sessions, NOW + timedelta(minutes=1)) == 0

    [message] = await world.outbox()
    assert (
        message.chat_id == chat.id and message.kind == MessageKind.digest and message.thread_id == 0
    )
    check_telegram_html(message.text)
    assert "Customs seizes cigarettes" in visible_text(message.text)
    after = await world.reload(chat)
    assert utc(after.next_digest_at) == TOMORROW
    # the next digest starts where this one's window ended: a minute before the tick
    assert utc(after.last_digest_at) == NOW - MATCH_SETTLE


async def test_concurrent_ticks_queue_each_digest_once(world: World) -> None:
    """Row locks (SKIP LOCKED) on PostgreSQL; SQLite's single writer and the dedup keys there."""
    customs = await world.topic("customs")
    chats = [await world.chat() for _ in range(12)]
    for chat in chats:
        await world.follow(chat, customs)
    await world.release("Customs seizes cigarettes", customs)

    first, second = await asyncio.gather(
        queue_due_digests(world.sessions, NOW), queue_due_digests(world.sessions, NOW)
    )

    assert first + second == 12
    messages = await world.outbox()
    assert sorted(m.chat_id for m in messages) == sorted(c.id for c in chats if c.id is not None)


async def test_a_worker_with_stale_state_cannot_queue_the_same_period_again(world: World) -> None:
    chat = await world.chat()
    customs = await world.topic("customs")
    await world.follow(chat, customs)
    await world.release("Customs seizes cigarettes", customs)
    assert await queue_due_digests(world.sessions, NOW) == 1

    # as if a second worker had read the chat before the first one committed
    async with world.sessions() as session:
        stale = await session.get(Chat, chat.id)
        assert stale is not None
        stale.next_digest_at, stale.last_digest_at = DUE, None
        session.add(stale)
        await session.commit()

    assert await queue_due_digests(world.sessions, NOW) == 0
    assert len(await world.outbox()) == 1


async def test_paused_inactive_instant_and_unmatched_chats_get_no_digest(world: World) -> None:
    customs = await world.topic("customs")
    weather = await world.topic("typhoon")
    paused = await world.chat(paused=True)
    gone = await world.chat(active=False)
    instant = await world.chat(frequency=Frequency.instant)
    quiet = await world.chat()
    for chat in (paused, gone, instant):
        await world.follow(chat, customs)
    await world.follow(quiet, weather)
    await world.release("Customs seizes cigarettes", customs)

    assert await queue_due_digests(world.sessions, NOW) == 0
    assert await world.outbox() == []
    quiet_after = await world.reload(quiet)
    assert utc(quiet_after.next_digest_at) == TOMORROW  # its schedule still moves on
    assert quiet_after.last_digest_at is None


async def test_forum_threads_get_separate_digests(world: World) -> None:
    forum = await world.chat(type="supergroup")
    customs, typhoon = await world.topic("customs"), await world.topic("typhoon")
    await world.follow(forum, customs, thread_id=0)
    await world.follow(forum, typhoon, thread_id=77)
    await world.release("Customs seizes cigarettes", customs)
    await world.release("Typhoon signal No. 8", typhoon)

    assert await queue_due_digests(world.sessions, NOW) == 2

    by_thread = {m.thread_id: visible_text(m.text) for m in await world.outbox()}
    assert set(by_thread) == {0, 77}
    assert "Customs seizes" in by_thread[0] and "Typhoon" not in by_thread[0]
    assert "Typhoon signal" in by_thread[77] and "Customs" not in by_thread[77]


async def test_releases_from_a_feeds_first_poll_are_never_announced(world: World) -> None:
    chat = await world.chat()
    customs = await world.topic("customs")
    await world.follow(chat, customs)
    await world.release("Old customs release from the backfill", customs, announce=False)

    assert await queue_due_digests(world.sessions, NOW) == 0
    await world.release("Customs seizes cigarettes", customs)
    assert await queue_due_digests(world.sessions, NOW + timedelta(days=1)) == 1
    [message] = await world.outbox()
    assert "backfill" not in message.text and "1 new release" in visible_text(message.text)


async def test_a_new_subscriber_gets_news_from_now_on_not_the_backlog(world: World) -> None:
    chat = await world.chat()
    customs = await world.topic("customs")
    await world.release("Seen before subscribing", customs, seen=NOW - timedelta(hours=3))
    await world.follow(chat, customs, at=NOW - timedelta(hours=2))
    await world.release("Seen after subscribing", customs, seen=NOW - timedelta(hours=1))

    assert await queue_due_digests(world.sessions, NOW) == 1
    [message] = await world.outbox()
    assert "Seen after subscribing" in message.text and "Seen before" not in message.text


async def test_each_release_once_under_its_best_topic_newest_first(world: World) -> None:
    chat = await world.chat()
    customs = await world.topic("customs", "Customs")
    seizure = await world.topic("customs seizure", "Customs seizures")
    drugs = await world.topic("drugs", "Drugs")
    for topic in (customs, seizure, drugs):
        await world.follow(chat, topic)
    # matched by all three; only "drugs" in the title: it goes under Drugs
    await world.release(
        "Drugs found", customs, seizure, drugs, in_title=(drugs,), seen=NOW - timedelta(hours=3)
    )
    # body-only matches: the most specific query wins
    await world.release("Airport case", customs, seizure, seen=NOW - timedelta(hours=2))
    await world.release("Border case", customs, seizure, seen=NOW - timedelta(hours=1))
    await world.release("Customs annual report", customs, seen=NOW - timedelta(hours=4))

    assert await queue_due_digests(world.sessions, NOW) == 1
    [message] = await world.outbox()
    text = visible_text(message.text)
    assert "4 new releases" in text
    for title in ("Drugs found", "Airport case", "Border case", "Customs annual report"):
        assert text.count(f"• {title}") == 1
    lines = text.splitlines()
    assert lines.index("Drugs") < lines.index("• Drugs found")
    seizures = lines.index("Customs seizures")
    assert (
        lines[seizures + 1] == "• Border case" and lines[seizures + 3] == "• Airport case"
    )  # newest first
    assert lines.index("Customs") < lines.index("• Customs annual report") < lines.index("Drugs")


async def test_ten_a_topic_then_and_n_more(world: World) -> None:
    chat = await world.chat()
    customs = await world.topic("customs")
    await world.follow(chat, customs)
    for n in range(13):
        await world.release(f"Customs case {n:02d}", customs, seen=NOW - timedelta(minutes=60 - n))

    assert await queue_due_digests(world.sessions, NOW) == 1
    text = visible_text((await world.outbox())[0].text)
    assert "13 new releases" in text
    assert "…and 3 more: /search customs" in text
    assert "Customs case 12" in text and "Customs case 02" not in text  # the ten newest shown


async def test_after_downtime_a_missed_digest_is_sent_once(world: World) -> None:
    chat = await world.chat(next_digest_at=DUE - timedelta(days=3))
    customs = await world.topic("customs")
    await world.follow(chat, customs, at=NOW - timedelta(days=5))
    for day in range(4):
        await world.release(f"Customs day {day}", customs, seen=NOW - timedelta(days=day, hours=1))
    back_up = NOW + timedelta(hours=4)  # noon in Hong Kong, three days late

    assert await queue_due_digests(world.sessions, back_up) == 1
    assert await queue_due_digests(world.sessions, back_up + timedelta(minutes=1)) == 0
    [message] = await world.outbox()
    assert "4 new releases" in visible_text(message.text)
    assert utc((await world.reload(chat)).next_digest_at) == TOMORROW


async def test_long_digest_is_queued_in_parts_within_telegram_limits(world: World) -> None:
    chat = await world.chat(language="zh")
    topics = [await world.topic(f"topic{t}", f"主題 {t}") for t in range(6)]
    for topic in topics:
        await world.follow(chat, topic)
        for n in range(10):
            await world.release(f"{topic.label} 公報 {n} " + "長" * 120, topic)

    queued = await queue_due_digests(world.sessions, NOW)

    messages = await world.outbox()
    assert queued == len(messages) >= 2
    for index, message in enumerate(messages, start=1):
        check_telegram_html(message.text)
        assert visible_length(message.text) <= 4096  # what Telegram counts: text after parsing
        if index > 1:
            assert visible_text(message.text).startswith(f"（{index}/{len(messages)}）")
    assert "60 則新公報" in visible_text(messages[0].text)


async def test_digest_now_sends_everything_since_the_last_digest(world: World) -> None:
    chat = await world.chat(next_digest_at=TOMORROW)
    customs = await world.topic("customs")
    await world.follow(chat, customs)
    await world.release("Customs seizes cigarettes", customs)
    await world.release("Customs seizes ivory", customs)
    assert chat.id is not None

    outcome = await queue_digest_now(world.sessions, chat.id, NOW)
    assert (outcome.parts_queued, outcome.releases) == (1, 2)
    assert utc(outcome.since) == SUBSCRIBED  # never had a digest: since it subscribed

    nothing = await queue_digest_now(world.sessions, chat.id, NOW + timedelta(minutes=5))
    assert (nothing.parts_queued, nothing.releases) == (0, 0)
    assert utc(nothing.since) == NOW  # "nothing new since" the digest just sent

    await world.release("Customs seizes rhino horn", customs, seen=NOW + timedelta(minutes=10))
    later = await queue_digest_now(world.sessions, chat.id, NOW + timedelta(minutes=20))
    assert (later.parts_queued, later.releases) == (1, 1)
    texts = [visible_text(m.text) for m in await world.outbox()]
    assert "rhino" in texts[-1] and "ivory" not in texts[-1]
    assert utc((await world.reload(chat)).next_digest_at) == TOMORROW  # schedule untouched


async def test_a_topic_only_digest_is_not_repeated_in_that_topics_next_scheduled_digest(
    world: World,
) -> None:
    """/digest in forum topic 77 sends 77's digest; the scheduled digest that follows gives
    the other topics theirs and topic 77 only what is newer."""
    forum = await world.chat(type="supergroup")
    customs, typhoon = await world.topic("customs"), await world.topic("typhoon")
    await world.follow(forum, customs, thread_id=0)
    await world.follow(forum, typhoon, thread_id=77)
    await world.release("Customs seizes cigarettes", customs)
    await world.release("Typhoon signal No. 8", typhoon)
    assert forum.id is not None

    asked = await queue_digest_now(
        world.sessions, forum.id, NOW - timedelta(minutes=20), thread_id=77
    )
    assert (asked.parts_queued, asked.releases) == (1, 1)
    await world.release("Typhoon: schools closed", typhoon, seen=NOW - timedelta(minutes=10))

    assert await queue_due_digests(world.sessions, NOW) == 2
    scheduled = [m for m in await world.outbox()][1:]
    by_thread = {m.thread_id: visible_text(m.text) for m in scheduled}
    assert set(by_thread) == {0, 77}
    assert "Customs seizes cigarettes" in by_thread[0]  # the main thread loses nothing
    assert "schools closed" in by_thread[77]  # news since the topic's /digest
    assert "Typhoon signal No. 8" not in by_thread[77]  # already sent by /digest
    assert "1 new release" in by_thread[77]

    # the next day: the topic's window moved on with the scheduled digest too
    await world.release("Typhoon: signal lowered", typhoon, seen=TOMORROW - timedelta(hours=1))
    assert await queue_due_digests(world.sessions, TOMORROW + timedelta(seconds=30)) == 1
    last = visible_text((await world.outbox())[-1].text)
    assert "signal lowered" in last and "schools closed" not in last and "No. 8" not in last


async def test_a_release_stored_before_a_digest_but_matched_after_it_is_not_lost(
    world: World,
) -> None:
    chat = await world.chat(next_digest_at=TOMORROW)
    customs, tax = await world.topic("customs"), await world.topic("tax")
    await world.follow(chat, customs)
    await world.follow(chat, tax)
    await world.release("Customs seizes cigarettes", customs)
    # stored an hour ago, but the matcher only gets to it after the next digest has gone
    late = await world.release("Salaries tax rebate", seen=NOW - timedelta(hours=1))
    assert chat.id is not None and late.id is not None and tax.id is not None

    first = await queue_digest_now(world.sessions, chat.id, NOW)
    assert first.releases == 1
    await world._add(
        Match(release_id=late.id, topic_id=tax.id, matched_at=NOW + timedelta(minutes=1))
    )

    second = await queue_digest_now(world.sessions, chat.id, NOW + timedelta(minutes=5))
    assert second.releases == 1
    assert "Salaries tax rebate" in visible_text((await world.outbox())[-1].text)


async def test_a_match_committed_just_after_the_tick_read_is_in_the_next_digest(
    world: World,
) -> None:
    """Matching stamps matched_at before it commits; the tick must not close its window over it."""
    chat = await world.chat()
    customs = await world.topic("customs")
    await world.follow(chat, customs)
    await world.release("Customs seizes cigarettes", customs)
    late = await world.release("Customs seizes ivory", seen=NOW - timedelta(seconds=40))
    assert chat.id is not None and late.id is not None and customs.id is not None

    assert await queue_due_digests(world.sessions, NOW) == 1
    # the matcher's transaction, stamped 30 s before the tick, commits only now
    await world._add(
        Match(release_id=late.id, topic_id=customs.id, matched_at=NOW - timedelta(seconds=30))
    )

    later = await queue_digest_now(world.sessions, chat.id, NOW + timedelta(hours=1))
    assert later.releases == 1
    assert "ivory" in visible_text((await world.outbox())[-1].text)


async def test_digest_now_for_a_chat_that_follows_nothing(world: World) -> None:
    chat = await world.chat()
    assert chat.id is not None
    outcome = await queue_digest_now(world.sessions, chat.id, NOW)
    assert (outcome.parts_queued, outcome.since) == (0, None)


async def test_instant_alert_groups_the_releases_of_one_poll(world: World) -> None:
    instant = await world.chat(frequency=Frequency.instant, next_digest_at=None)
    daily = await world.chat()
    customs, typhoon = await world.topic("customs"), await world.topic("typhoon")
    for chat in (instant, daily):
        await world.follow(chat, customs)
        await world.follow(chat, typhoon)
    poll = [
        await world.release("Customs seizes cigarettes", customs),
        await world.release("Customs seizes ivory", customs),
        await world.release("Typhoon signal No. 3", typhoon),
    ]
    unrelated = await world.release("Budget speech")
    ids = [r.id for r in (*poll, unrelated) if r.id is not None]

    assert await queue_instant_alerts(world.sessions, ids) == 1
    assert await queue_instant_alerts(world.sessions, ids) == 0  # a retry queues nothing twice

    [message] = await world.outbox()
    assert message.chat_id == instant.id and message.kind == MessageKind.instant
    check_telegram_html(message.text)
    text = visible_text(message.text)
    assert "3 new releases" in text
    assert all(r.title in text for r in poll) and "Budget" not in text


async def test_force_sends_every_active_unpaused_chat_now(world: World) -> None:
    customs = await world.topic("customs")
    later_today = await world.chat(next_digest_at=TOMORROW)
    paused = await world.chat(paused=True, next_digest_at=TOMORROW)
    for chat in (later_today, paused):
        await world.follow(chat, customs)
    await world.release("Customs seizes cigarettes", customs)

    assert await queue_due_digests(world.sessions, NOW) == 0
    assert await queue_due_digests(world.sessions, NOW, force=True) == 1
    assert await queue_due_digests(world.sessions, NOW, force=True) == 0

    [message] = await world.outbox()
    assert message.chat_id == later_today.id
    assert utc((await world.reload(later_today)).next_digest_at) == TOMORROW


async def test_a_chat_never_scheduled_is_scheduled_by_the_tick(world: World) -> None:
    chat = await world.chat(next_digest_at=None, digest_time=time(9, 0))
    customs = await world.topic("customs")
    await world.follow(chat, customs)
    await world.release("Customs seizes cigarettes", customs)

    assert await queue_due_digests(world.sessions, NOW) == 0
    assert utc((await world.reload(chat)).next_digest_at) == NOW.replace(
        hour=1, second=0
    )  # 09:00 HKT
    assert await queue_due_digests(world.sessions, NOW + timedelta(hours=1)) == 1


async def test_an_alert_shows_a_release_matched_by_two_topics_once_then_digest_is_empty(
    world: World,
) -> None:
    customs, seizure = await world.topic("customs"), await world.topic("seizure")
    instant = await world.chat(frequency=Frequency.instant, next_digest_at=None)
    await world.follow(instant, customs)
    await world.follow(instant, seizure)
    release = await world.release("Customs seizure at the airport", customs, seizure)
    assert release.id is not None

    assert await queue_instant_alerts(world.sessions, [release.id]) == 1
    [message] = await world.outbox()
    text = visible_text(message.text)
    assert "1 new release" in text and text.count("• ") == 1

    # /digest right after: what was alerted is not sent again
    outcome = await queue_digest_now(world.sessions, instant.id, NOW)
    assert outcome.parts_queued == 0 and outcome.since is not None


async def test_the_manage_button_opens_the_mini_app_in_private_chats(world: World) -> None:
    import json

    url = "https://digest.example.org/app"
    private = await world.chat(type="private")
    group = await world.chat(type="supergroup")
    instant = await world.chat(type="private", frequency=Frequency.instant, next_digest_at=None)
    customs = await world.topic("customs")
    for chat in (private, group, instant):
        await world.follow(chat, customs)
    release = await world.release("Customs seizes cigarettes", customs)
    assert release.id is not None

    assert await queue_due_digests(world.sessions, NOW, mini_app_url=url) == 2
    assert await queue_instant_alerts(world.sessions, [release.id], mini_app_url=url) == 1
    buttons = {
        m.chat_id: json.loads(m.reply_markup or "{}")["inline_keyboard"][0][0]
        for m in await world.outbox()
    }
    assert buttons[private.id]["web_app"] == {"url": url}
    assert buttons[instant.id]["web_app"] == {"url": url}
    assert buttons[group.id]["callback_data"] == "v1:manage" and "web_app" not in buttons[group.id]


async def test_the_match_window_shares_a_release_between_topics_but_reads_a_correction_anew(
    world: World,
) -> None:
    from sqlalchemy import update

    from bot.digest.compose import DigestItem
    from bot.digest.service import _matches_by_topic

    customs = await world.topic("customs")
    drugs = await world.topic("drugs")
    release = await world.release("Drugs seized", customs, drugs)
    assert customs.id is not None and drugs.id is not None
    shared: dict[tuple[int, bool, int], DigestItem] = {}
    since, until = NOW - timedelta(days=1), NOW
    async with world.sessions() as session:
        found = await _matches_by_topic(
            session,
            [customs.id, drugs.id],
            seen_after=since,
            seen_until=until,
            items=shared,
        )
        [by_customs], [by_drugs] = found[customs.id], found[drugs.id]
        assert by_customs.item is by_drugs.item  # one item for both topics, not two copies
        await session.exec(
            update(Release)
            .where(col(Release.id) == release.id)
            .values(title="Drugs seized (corrected)", revision=1, corrected_at=NOW)
        )
        await session.commit()
        again = await _matches_by_topic(
            session,
            [customs.id],
            seen_after=since,
            seen_until=until,
            items=shared,
        )
    assert [m.item.title for m in again[customs.id]] == ["Drugs seized (corrected)"]
