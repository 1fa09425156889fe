"""Pruning: finished outbox rows and old matches go after their retention; nothing else does."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlmodel import col, select

from bot.config import ConfigError, load_settings
from bot.db import SessionFactory
from bot.delivery.html import visible_text
from bot.digest.service import queue_due_digests
from bot.models import (
    Chat,
    Frequency,
    Match,
    MessageKind,
    MessageState,
    OutboxMessage,
    Release,
    Subscription,
    Topic,
)
from bot.prune import prune

NOW = datetime(2026, 11, 30, 0, 1, 30, tzinfo=UTC)  # Monday 08:01:30 in Hong Kong
DAY = timedelta(days=1)


async def _add(sessions: SessionFactory, *rows: object) -> None:
    async with sessions() as session:
        session.add_all(rows)
        await session.commit()


async def _release(sessions: SessionFactory, n: int, seen: datetime, **kw: object) -> Release:
    release = Release(
        link=f"https://www.info.gov.hk/gia/general/P{n:06d}.htm",
        guid=f"P{n:06d}",
        title=f"Customs release {n}",
        summary="Summary.",
        published_at=seen,
        content_hash=f"{n:064d}",
        first_seen_at=seen,
        **kw,  # type: ignore[arg-type]
    )
    await _add(sessions, release)
    return release


async def test_finished_outbox_rows_past_retention_go_recent_and_unsent_ones_stay(
    any_sessions: SessionFactory,
) -> None:
    chat = Chat(telegram_id=1)
    await _add(any_sessions, chat)
    old, recent = NOW - 31 * DAY, NOW - 5 * DAY
    rows = {
        "sent long ago": (MessageState.sent, old, old),
        "failed long ago": (MessageState.failed, old, None),
        "dropped long ago": (MessageState.dropped, old, None),
        "sent recently": (MessageState.sent, recent, recent),
        "queued long ago, sent recently": (MessageState.sent, old, recent),
        "still queued": (MessageState.queued, old, None),
        "in flight": (MessageState.sending, old, None),
    }
    await _add(
        any_sessions,
        *(
            OutboxMessage(
                chat_id=chat.id,
                text=text,
                kind=MessageKind.digest,
                state=state,
                created_at=created,
                not_before=created,
                sent_at=sent,
            )
            for text, (state, created, sent) in rows.items()
        ),
    )

    report = await prune(any_sessions, load_settings(), NOW)

    assert report.outbox == 3
    async with any_sessions() as session:
        left = set((await session.exec(select(OutboxMessage.text))).all())
    assert left == {"sent recently", "queued long ago, sent recently", "still queued", "in flight"}
    assert (await prune(any_sessions, load_settings(), NOW)).outbox == 0  # nothing more


async def test_old_matches_go_and_a_weekly_digest_after_the_prune_is_still_whole(
    any_sessions: SessionFactory,
) -> None:
    settings = load_settings(match_retention_days=14)
    topic = Topic(query="customs", label="Customs")
    weekly = Chat(
        telegram_id=2,
        frequency=Frequency.weekly,
        digest_weekday=0,
        digest_time=time(8, 0),
        next_digest_at=NOW - timedelta(seconds=90),
        last_digest_at=NOW - 7 * DAY,
        created_at=NOW - 200 * DAY,
    )
    await _add(any_sessions, topic, weekly)
    await _add(
        any_sessions,
        Subscription(
            chat_id=weekly.id,
            topic_id=topic.id,
            query_text="customs",
            created_at=NOW - 100 * DAY,
        ),
    )
    ancient = await _release(any_sessions, 1, NOW - 60 * DAY)
    in_window = await _release(any_sessions, 2, NOW - 6 * DAY)
    fixed = await _release(any_sessions, 3, NOW - 60 * DAY, corrected_at=NOW - 3 * DAY, revision=1)
    await _add(
        any_sessions,
        *(
            Match(release_id=r.id, topic_id=topic.id, matched_at=r.first_seen_at)
            for r in (ancient, in_window, fixed)
        ),
    )

    report = await prune(any_sessions, settings, NOW)

    assert report.matches == 1
    async with any_sessions() as session:
        kept = set((await session.exec(select(Match.release_id))).all())
    assert kept == {in_window.id, fixed.id}  # a correction inside the retention keeps its match
    assert await queue_due_digests(any_sessions, NOW) == 1
    async with any_sessions() as session:
        (digest,) = (
            await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        ).all()
    shown = visible_text(digest.text)
    assert "Customs release 2" in shown and "Customs release 3" in shown
    assert "Customs release 1" not in shown


@pytest.mark.parametrize("days", [0, 7, 13])
def test_a_match_retention_shorter_than_two_weekly_windows_is_refused(days: int) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(match_retention_days=days)
    message = str(refused.value)
    assert message.startswith("MATCH_RETENTION_DAYS: must be at least 14 days")
    assert "\n" not in message


def test_an_outbox_retention_below_a_day_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(outbox_retention_days=0)
    assert str(refused.value).startswith("OUTBOX_RETENTION_DAYS: ")
