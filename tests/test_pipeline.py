"""The hand-off from ingest to matching (bot.pipeline): durable, done once, never undone.

Real poller, feed server, matching and instant alerts; a failure is injected where a crash
or a database hiccup would land.
"""

from __future__ import annotations

from email.utils import format_datetime

import pytest
from sqlmodel import col, select

import bot.matching.service
import bot.pipeline
from bot.db import SessionFactory
from bot.feeds.poller import poll_all_feeds, sync_configured_feeds
from bot.models import Chat, Frequency, Release, StoredBatch, utcnow
from bot.pipeline import poll_all, process_stored
from bot.subscriptions import register_chat, set_frequency, subscribe
from tests.delivery.helpers import queued_texts
from tests.doubles.feed_server import FeedServer, rss
from tests.feeds.conftest import make_settings

LINK = "https://www.info.gov.hk/gia/general/202612/03/P2026120300500.htm"
RELEASE = {
    "title": "Customs seizes smuggled goods worth $5 million",
    "link": LINK,
    "guid": LINK,
    "description": "<p>Hong Kong Customs seized suspected smuggled goods.</p>",
}


@pytest.fixture
async def feed_server():
    async with FeedServer() as server:
        yield server


async def _instant_follower(sessions: SessionFactory, server: FeedServer) -> Chat:
    settings = make_settings()
    server.add_feed("/gia.xml", rss([]))
    await sync_configured_feeds(sessions, [server.url("/gia.xml")])
    await poll_all(sessions, settings)  # the feed exists before it publishes
    chat = await register_chat(sessions, 7101, "private", None, "en", settings)
    await subscribe(sessions, chat, 0, "customs", settings.max_subscriptions)
    return await set_frequency(sessions, chat, Frequency.instant.value)


async def _batches(sessions: SessionFactory) -> list[StoredBatch]:
    async with sessions() as s:
        return list((await s.exec(select(StoredBatch).order_by(col(StoredBatch.id)))).all())


async def test_a_poll_that_stops_before_matching_loses_nothing(
    any_sessions: SessionFactory, feed_server: FeedServer
) -> None:
    """The poll stores and commits, then the process dies before matching (here: the poller
    alone, as a killed process would leave it). The next pass matches and alerts once."""
    chat = await _instant_follower(any_sessions, feed_server)
    release = {**RELEASE, "pubDate": format_datetime(utcnow(), usegmt=True)}
    feed_server.set_feed_body("/gia.xml", rss([release]))

    (report,) = await poll_all_feeds(any_sessions, make_settings())  # stored, not matched

    assert (report.status, report.new) == ("ok", 1)
    assert await queued_texts(any_sessions, chat) == []
    (batch,) = await _batches(any_sessions)
    async with any_sessions() as s:
        (stored,) = (await s.exec(select(Release).where(Release.link == LINK))).all()
    assert batch.new_ids == [stored.id] and batch.announce is True

    assert await process_stored(any_sessions) == 1  # the next tick, in any process

    [alert] = await queued_texts(any_sessions, chat)
    assert "$5 million" in alert
    assert await _batches(any_sessions) == []
    assert await process_stored(any_sessions) == 0


async def test_a_batch_done_twice_alerts_once(
    any_sessions: SessionFactory, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matched and alerted, then the process dies before the batch is marked done: the
    batch is done again on the next pass, and the follower still gets one alert."""
    chat = await _instant_follower(any_sessions, feed_server)
    release = {**RELEASE, "pubDate": format_datetime(utcnow(), usegmt=True)}
    feed_server.set_feed_body("/gia.xml", rss([release]))
    real = bot.pipeline.on_releases_stored
    crashes = [RuntimeError("killed after the alerts were queued")]

    async def then_crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        await real(*args, **kwargs)
        if crashes:
            raise crashes.pop()

    monkeypatch.setattr(bot.pipeline, "on_releases_stored", then_crash)
    await poll_all(any_sessions, make_settings())
    assert len(await _batches(any_sessions)) == 1  # it failed after queueing: still waiting
    assert len(await queued_texts(any_sessions, chat)) == 1

    await poll_all(any_sessions, make_settings())  # 304 from the feed; the batch is redone

    assert await _batches(any_sessions) == []
    [alert] = await queued_texts(any_sessions, chat)
    assert "$5 million" in alert


async def test_a_failing_batch_holds_the_later_ones_back_until_it_goes_through(
    any_sessions: SessionFactory, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await _instant_follower(any_sessions, feed_server)
    real = bot.matching.service.match_releases
    failing = [True]

    async def hiccup(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failing:
            raise RuntimeError("database is locked")
        return await real(*args, **kwargs)

    monkeypatch.setattr(bot.matching.service, "match_releases", hiccup)
    first = {**RELEASE, "pubDate": format_datetime(utcnow(), usegmt=True)}
    feed_server.set_feed_body("/gia.xml", rss([first]))
    await poll_all(any_sessions, make_settings())
    second = {**first, "title": "Customs seizes more goods", "link": LINK + "?2", "guid": "2"}
    feed_server.set_feed_body("/gia.xml", rss([second, first]))
    await poll_all(any_sessions, make_settings())

    waiting = await _batches(any_sessions)
    assert [b.attempts for b in waiting] == [2, 0]
    assert waiting[0].last_error == "RuntimeError: database is locked"
    assert await queued_texts(any_sessions, chat) == []

    failing.clear()
    assert await process_stored(any_sessions) == 2
    alerts = await queued_texts(any_sessions, chat)
    assert len(alerts) == 2
    assert "$5 million" in alerts[0] and "more goods" in alerts[1]
