"""Topics, Match rows, /search and preview on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, delete, select

from bot.db import SessionFactory, create_engine, session_factory
from bot.matching.index import TopicIndex
from bot.matching.preview import preview_digest
from bot.matching.query import QueryError, parse_query
from bot.matching.service import (
    active_index,
    get_or_create_topic,
    invalidate_topic_index,
    match_releases,
    match_topic_recent,
    search_releases,
)
from bot.models import Chat, Match, Release, Subscription, Topic
from tests.matching.feed_text import EN_SEED, ZH_SUBSET, FixtureRelease, fixture_releases

NOW = datetime(2026, 10, 6, 12, 0, tzinfo=UTC)


async def store(
    sessions: SessionFactory, releases: list[FixtureRelease], *, shift: timedelta
) -> dict[str, int]:
    """Stores the releases, published `shift` later than in the feed; returns ids by title."""
    ids: dict[str, int] = {}
    async with sessions() as s:
        for r in releases:
            row = Release(
                link=r.link,
                guid=r.link,
                title=r.title,
                summary=r.body[:300],
                body=r.body,
                published_at=r.published_at + shift,
                content_hash="x",
            )
            s.add(row)
            await s.flush()
            assert row.id is not None
            ids[r.title] = row.id
        await s.commit()
    return ids


async def follow(sessions: SessionFactory, chat_telegram_id: int, query: str) -> Topic:
    async with sessions() as s:
        chat = (await s.exec(select(Chat).where(Chat.telegram_id == chat_telegram_id))).first()
        if chat is None:
            chat = Chat(telegram_id=chat_telegram_id)
            s.add(chat)
            await s.flush()
        topic = await get_or_create_topic(s, parse_query(query))
        assert chat.id is not None and topic.id is not None
        s.add(Subscription(chat_id=chat.id, topic_id=topic.id, query_text=query))
        await s.commit()
        return topic


async def matches(sessions: SessionFactory) -> set[tuple[int, int, bool]]:
    async with sessions() as s:
        return {(m.release_id, m.topic_id, m.in_title) for m in (await s.exec(select(Match))).all()}


@pytest.fixture
async def stored(any_sessions: SessionFactory, feeds_dir: Path) -> dict[str, int]:
    # the English seed releases are from 2025: move them next to the Chinese ones (Oct 2026)
    en = await store(any_sessions, fixture_releases(feeds_dir, EN_SEED), shift=timedelta(days=534))
    zh = await store(any_sessions, fixture_releases(feeds_dir, ZH_SUBSET), shift=timedelta(0))
    return en | zh


def title_id(ids: dict[str, int], start: str) -> int:
    return next(i for title, i in ids.items() if title.startswith(start))


async def test_equivalent_queries_get_one_topic_row(any_sessions: SessionFactory) -> None:
    async with any_sessions() as s:
        topics = [
            await get_or_create_topic(s, parse_query(q))
            for q in ("Customs", " customs ", "海關", "C&ED")
        ]
        await s.commit()
    assert len({t.id for t in topics}) == 1
    assert topics[0].query == "@customs"
    assert topics[0].label == "Customs / 海關"


async def test_get_or_create_topic_is_safe_when_chats_race(any_sessions: SessionFactory) -> None:
    async def create() -> int | None:
        async with any_sessions() as s:
            topic = await get_or_create_topic(s, parse_query("ivory seizure"))
            await s.commit()
            return topic.id

    ids = await asyncio.gather(*(create() for _ in range(5)))
    assert len(set(ids)) == 1


async def test_match_releases_writes_rows_once_for_followed_topics_only(
    any_sessions: SessionFactory, stored: dict[str, int]
) -> None:
    customs = await follow(any_sessions, 1, "customs")
    await follow(any_sessions, 2, "海關")  # same topic, second chat
    security = await follow(any_sessions, 2, '"national security"')
    async with any_sessions() as s:  # a topic nobody follows
        unfollowed = await get_or_create_topic(s, parse_query("sanctions"))
        await s.commit()
    conference = title_id(stored, "Conference on Simplification")
    statement = title_id(stored, "HKSAR Government strongly condemns")
    zh_customs = title_id(stored, "香港海關拘捕")
    zh_legco = title_id(stored, "香港特區立法會")

    written = await match_releases(any_sessions, list(stored.values()))

    expected = {
        (conference, customs.id, False),
        (zh_customs, customs.id, True),
        (statement, security.id, True),
        (zh_legco, security.id, False),
    }
    assert written == len(expected)
    assert await matches(any_sessions) == expected
    assert all(topic_id != unfollowed.id for _, topic_id, _ in expected)
    # idempotent: matching again writes nothing new
    assert await match_releases(any_sessions, list(stored.values())) == 0
    assert await matches(any_sessions) == expected


async def test_rematching_an_updated_release_replaces_its_rows(
    any_sessions: SessionFactory, stored: dict[str, int]
) -> None:
    customs = await follow(any_sessions, 1, "customs")
    conference = title_id(stored, "Conference on Simplification")
    await match_releases(any_sessions, [conference])
    async with any_sessions() as s:
        first = (await s.exec(select(Match))).one()
        release = await s.get(Release, conference)
        assert release is not None
        release.title = "Customs conference concludes"
        s.add(release)
        await s.commit()
    assert await match_releases(any_sessions, [conference]) == 1  # in_title changed
    async with any_sessions() as s:
        again = (await s.exec(select(Match))).one()
        release = await s.get(Release, conference)
        assert release is not None
        release.title, release.body = "Conference concludes", "Nothing about it here."
        s.add(release)
        await s.commit()
    assert (again.topic_id, again.in_title, again.matched_at) == (
        customs.id,
        True,
        first.matched_at,
    )
    await match_releases(any_sessions, [conference])
    assert await matches(any_sessions) == set()


async def test_the_index_follows_new_and_dropped_subscriptions(
    any_sessions: SessionFactory, stored: dict[str, int]
) -> None:
    zh_customs = title_id(stored, "香港海關拘捕")
    assert await match_releases(any_sessions, [zh_customs]) == 0  # nobody follows anything
    topic = await follow(any_sessions, 1, "瑜伽")
    assert await match_releases(any_sessions, [zh_customs]) == 1
    async with any_sessions() as s:
        await s.exec(delete(Subscription))
        await s.commit()
    other = await follow(any_sessions, 3, "banks")
    await match_releases(any_sessions, [title_id(stored, "與銀行有關的騙案通知")])
    assert {t for _, t, _ in await matches(any_sessions)} == {topic.id, other.id}


async def test_match_topic_recent_matches_a_new_topic_against_recent_releases(
    any_sessions: SessionFactory, stored: dict[str, int]
) -> None:
    topic = await follow(any_sessions, 1, "customs")
    # the fixture releases are from Oct 2026: look back far enough from today
    days = (datetime.now(UTC) - datetime(2026, 9, 1, tzinfo=UTC)).days
    found = await match_topic_recent(any_sessions, topic.id or 0, days=days)
    assert [r.id for r in found] == [
        title_id(stored, "Conference on Simplification"),
        title_id(stored, "香港海關拘捕"),
    ]
    assert {(r, t) for r, t, _ in await matches(any_sessions)} == {(r.id, topic.id) for r in found}
    assert await match_topic_recent(any_sessions, topic.id or 0, days=1) == [] or days <= 1


async def test_search_returns_newest_first_with_title_matches_first_within_a_day(
    any_sessions: SessionFactory, stored: dict[str, int]
) -> None:
    found = await search_releases(any_sessions, "香港", limit=10)
    dates = [r.published_at.astimezone(UTC) + timedelta(hours=8) for r in found]
    assert [d.date() for d in dates] == sorted((d.date() for d in dates), reverse=True)
    oct5 = [
        r.title
        for r in found
        if r.published_at.astimezone(UTC).date() == datetime(2026, 10, 5).date()
    ]
    assert oct5[0].startswith("香港特區立法會")  # "香港" in the title; the rest only in the body
    assert len(await search_releases(any_sessions, "香港", limit=2)) == 2
    assert [r.id for r in await search_releases(any_sessions, "customs -conference")] == [
        title_id(stored, "香港海關拘捕")
    ]
    with pytest.raises(QueryError):
        await search_releases(any_sessions, '"unbalanced')


async def test_preview_lists_matches_newest_first(
    any_sessions: SessionFactory, stored: dict[str, int]
) -> None:
    text = await preview_digest(any_sessions, "customs", days=7, now=NOW)
    lines = text.splitlines()
    assert (
        lines[0]
        == "Customs / 海關: 2 releases in the last 7 days (to 2026-10-06, dates in Hong Kong time)"
    )
    assert lines[2].startswith("2026-10-03  Conference on Simplification")  # Apr 17 2025 + 534 days
    assert lines[6].startswith("2026-10-02  香港海關拘捕瑜伽中心董事")
    assert lines[7].strip() == "https://www.info.gov.hk/gia/general/202610/02/P2026100200770.htm"
    assert lines[8].strip().startswith("香港海關今日（十月二日）拘捕")
    assert len(lines[8].strip()) <= 160
    assert len(lines) == 9


async def test_preview_says_so_when_nothing_matched(
    any_sessions: SessionFactory, stored: dict[str, int]
) -> None:
    text = await preview_digest(any_sessions, "ivory", days=3, now=NOW)
    assert text == "No release in the last 3 days matched ivory."


async def test_preview_counts_what_it_does_not_list(any_sessions: SessionFactory) -> None:
    ivory = [
        FixtureRelease(
            f"Ivory seizure {n}",
            "Customs seized ivory.",
            f"https://example.org/{n}",
            NOW - timedelta(hours=n),
        )
        for n in range(1, 14)
    ]
    await store(any_sessions, ivory, shift=timedelta(0))
    lines = (await preview_digest(any_sessions, "ivory", days=1, now=NOW)).splitlines()
    assert lines[0] == "ivory: 13 releases in the last day (to 2026-10-06, dates in Hong Kong time)"
    assert [line.split("  ", 1)[1] for line in lines if line.startswith("2026-")] == [
        f"Ivory seizure {n}" for n in range(1, 11)
    ]
    assert lines[-1] == "…and 3 more"


async def test_scans_in_small_batches_find_the_same_releases(
    any_sessions: SessionFactory, stored: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.matching.service as service

    whole = [r.id for r in await search_releases(any_sessions, "香港 OR hong", limit=50)]
    monkeypatch.setattr(service, "BATCH", 2)
    assert [r.id for r in await search_releases(any_sessions, "香港 OR hong", limit=50)] == whole
    assert len(whole) > 4


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many topics each full build of an index had (there should be one per process)."""
    import bot.matching.service as service

    counted: list[int] = []
    build = service._build_index

    def counting(topics: list[tuple[int, str]], sample: list[tuple[str, str]]) -> TopicIndex:
        counted.append(len(topics))
        return build(topics, sample)

    monkeypatch.setattr(service, "_build_index", counting)
    return counted


@pytest.fixture
async def other_process(db_url: str) -> AsyncIterator[SessionFactory]:
    """Sessions of a second engine on the same database: what another worker would use."""
    engine = create_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


async def unfollow(sessions: SessionFactory, topic: Topic) -> None:
    async with sessions() as s:
        await s.exec(delete(Subscription).where(col(Subscription.topic_id) == topic.id))
        await s.commit()


async def test_topics_followed_elsewhere_are_matched_at_the_next_poll_without_a_rebuild(
    any_sessions: SessionFactory,
    other_process: SessionFactory,
    stored: dict[str, int],
    builds: list[int],
) -> None:
    zh_customs = title_id(stored, "香港海關拘捕")
    customs = await follow(any_sessions, 1, "customs")
    assert await match_releases(any_sessions, [zh_customs]) == 1
    index = await active_index(any_sessions)
    # another worker's chat follows a new topic: this process's next poll matches it
    yoga = await follow(other_process, 2, "瑜伽")
    assert await match_releases(any_sessions, [zh_customs]) == 1
    assert {t for _, t, _ in await matches(any_sessions)} == {customs.id, yoga.id}
    assert await active_index(any_sessions) is index and yoga.id in index
    assert builds == [1]  # one build, at the first poll; the new topic was added in place


async def test_unfollowed_topics_leave_the_index_at_the_next_comparison(
    any_sessions: SessionFactory,
    other_process: SessionFactory,
    stored: dict[str, int],
    builds: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bot.matching.service as service

    conference = title_id(stored, "Conference on Simplification")
    customs = await follow(any_sessions, 1, "customs")
    asean = await follow(any_sessions, 1, "asean")
    index = await active_index(any_sessions)
    await unfollow(other_process, customs)
    await match_releases(any_sessions, [conference])
    assert customs.id in index  # compared only every DIFF_SECONDS …
    monkeypatch.setattr(service, "DIFF_SECONDS", 0.0)
    await active_index(any_sessions)
    assert customs.id not in index and asean.id in index
    async with any_sessions() as s:
        await s.exec(delete(Match))
        await s.commit()
    await match_releases(any_sessions, [conference])
    assert {t for _, t, _ in await matches(any_sessions)} == {asean.id}
    # following it again (an old topic id, a new subscription) brings it back in place
    monkeypatch.setattr(service, "DIFF_SECONDS", 300.0)
    await follow(other_process, 5, "customs")
    await match_releases(any_sessions, [conference])
    assert {t for _, t, _ in await matches(any_sessions)} == {asean.id, customs.id}
    assert builds == [2]


async def test_invalidate_drops_an_unfollowed_topic_at_once(
    any_sessions: SessionFactory, stored: dict[str, int], builds: list[int]
) -> None:
    customs = await follow(any_sessions, 1, "customs")
    index = await active_index(any_sessions)
    await unfollow(any_sessions, customs)
    invalidate_topic_index()
    assert await active_index(any_sessions) is index
    assert customs.id not in index
    assert builds == [1]


async def test_a_subscription_committed_after_a_newer_one_is_still_seen(
    any_sessions: SessionFactory, stored: dict[str, int], builds: list[int]
) -> None:
    zh_customs = title_id(stored, "香港海關拘捕")
    for n, query in enumerate(("asean", "ivory", "sanctions")):
        await follow(any_sessions, n + 1, query)
    async with any_sessions() as s:
        middle = (
            await s.exec(select(Subscription).where(Subscription.query_text == "ivory"))
        ).one()
        chat_id, middle_id = middle.chat_id, middle.id
        await s.delete(middle)
        await s.commit()
    index = await active_index(any_sessions)  # has read up to the newest subscription id
    async with any_sessions() as s:  # a transaction that took its id earlier commits now
        yoga = await get_or_create_topic(s, parse_query("瑜伽"))
        assert yoga.id is not None
        s.add(Subscription(id=middle_id, chat_id=chat_id, topic_id=yoga.id, query_text="瑜伽"))
        await s.commit()
    assert await match_releases(any_sessions, [zh_customs]) == 1
    assert yoga.id in index and builds == [2]
