"""Every release once, and as its own publisher wrote it: through the real poller, feed
servers, matching and the digest (no stand-in for the pipeline here).

- a feed never rewrites another feed's release (a copied link, then a phishing edit);
- a feed that squats a predictable link never suppresses the official text;
- one release reached through two feeds and two links is matched, found and shown once.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

from sqlmodel import col, select

from bot.config import Settings
from bot.db import SessionFactory
from bot.digest.service import queue_digest_now
from bot.feeds.poller import sync_configured_feeds
from bot.matching.service import search_releases
from bot.models import Chat, Feed, FeedEntry, Match, OutboxMessage, Release, utcnow
from bot.pipeline import poll_all
from bot.subscriptions import register_chat, subscribe
from tests.doubles.feed_server import FeedServer, rss
from tests.feeds.conftest import make_settings

OFFICIAL_LINK = "https://www.info.gov.hk/gia/general/202610/05/P2026100500300.htm"
OFFICIAL = {
    "title": "Hong Kong Customs seizes suspected cocaine",
    "link": OFFICIAL_LINK,
    "guid": OFFICIAL_LINK,
    "description": "<p>Hong Kong Customs today seized about 5 kilograms of suspected cocaine "
    "at Hong Kong International Airport.</p>",
}
PHISHING_TEXT = "Customs: parcels held, pay release fee online now"
PHISHING_LINK = "https://customs-hk-release-fee.example/pay"


def _dated(item: dict[str, str]) -> dict[str, str]:
    """The item published now: after its feed was added, so it is news."""
    return {**item, "pubDate": format_datetime(utcnow(), usegmt=True)}


async def _follower(sessions: SessionFactory, settings: Settings, query: str) -> Chat:
    chat = await register_chat(sessions, 5151, "private", None, "en", settings)
    await subscribe(sessions, chat, 0, query, settings.max_subscriptions)
    return chat


async def _digest_text(sessions: SessionFactory, chat: Chat) -> str:
    assert chat.id is not None
    await queue_digest_now(sessions, chat.id)
    async with sessions() as s:
        rows = await s.exec(select(OutboxMessage.text).where(OutboxMessage.chat_id == chat.id))
        return "\n".join(rows.all())


async def _release_of(sessions: SessionFactory, feed_url: str) -> list[Release]:
    async with sessions() as s:
        feed = (await s.exec(select(Feed).where(Feed.url == feed_url))).one()
        query = (
            select(Release)
            .join(FeedEntry, col(FeedEntry.release_id) == col(Release.id))
            .where(FeedEntry.feed_id == feed.id)
            .order_by(col(Release.id))
        )
        return list((await s.exec(query)).all())


async def _empty_then(
    sessions: SessionFactory, server: FeedServer, path: str, settings: Settings
) -> str:
    """A feed added (and polled once) before it publishes anything."""
    url = server.add_feed(path, rss([]))
    await sync_configured_feeds(sessions, [url])
    await poll_all(sessions, settings)
    return url


async def test_a_feed_that_copied_a_release_cannot_rewrite_it(
    any_sessions: SessionFactory, feed_server: FeedServer
) -> None:
    settings = make_settings()
    chat = await _follower(any_sessions, settings, "customs")
    official = await _empty_then(any_sessions, feed_server, "/official.xml", settings)
    release = _dated(OFFICIAL)
    feed_server.set_feed_body("/official.xml", rss([release]))
    await poll_all(any_sessions, settings)
    # a hostile feed copies the official release (its link and text) under a guid of its own
    copy = {**release, "guid": "tag:hostile.example,2026:1"}
    hostile = feed_server.add_feed("/hostile.xml", rss([copy]))
    await sync_configured_feeds(any_sessions, [hostile])
    await poll_all(any_sessions, settings)

    # then it changes its entry into a phishing message
    phishing = {**copy, "title": PHISHING_TEXT, "link": PHISHING_LINK, "description": PHISHING_TEXT}
    feed_server.set_feed_body("/hostile.xml", rss([phishing]))
    reports = {r.url: r for r in await poll_all(any_sessions, settings)}

    assert reports[hostile].status == "ok"
    digest = await _digest_text(any_sessions, chat)
    assert OFFICIAL["title"] in digest and OFFICIAL_LINK in digest
    assert "release fee" not in digest and PHISHING_LINK not in digest
    found = await search_releases(any_sessions, "customs")
    assert [(r.title, r.link) for r in found] == [(OFFICIAL["title"], OFFICIAL_LINK)]
    [stored] = await _release_of(any_sessions, official)
    assert (stored.title, stored.link) == (OFFICIAL["title"], OFFICIAL_LINK)
    assert "5 kilograms" in stored.body


async def test_a_feed_squatting_the_next_official_link_does_not_hide_the_official_text(
    any_sessions: SessionFactory, feed_server: FeedServer
) -> None:
    settings = make_settings()
    chat = await _follower(any_sessions, settings, "customs")
    official = await _empty_then(any_sessions, feed_server, "/official.xml", settings)
    # the official links are predictable: a hostile feed publishes the next one first
    squat = _dated(
        {
            "title": PHISHING_TEXT,
            "link": OFFICIAL_LINK,
            "guid": "tag:hostile.example,2026:squat",
            "description": PHISHING_TEXT,
        }
    )
    hostile = feed_server.add_feed("/hostile.xml", rss([squat]))
    await sync_configured_feeds(any_sessions, [hostile])
    await poll_all(any_sessions, settings)

    feed_server.set_feed_body("/official.xml", rss([_dated(OFFICIAL)]))
    reports = {r.url: r for r in await poll_all(any_sessions, settings)}

    assert (reports[official].status, reports[official].new) == ("ok", 1)
    digest = await _digest_text(any_sessions, chat)
    assert OFFICIAL["title"] in digest and "5 kilograms" in digest
    [stored] = await _release_of(any_sessions, official)
    assert (stored.title, stored.link, stored.announce) == (OFFICIAL["title"], OFFICIAL_LINK, True)
    assert stored.duplicate_of is None


async def test_one_release_through_two_feeds_and_two_links_is_matched_found_and_shown_once(
    any_sessions: SessionFactory, feed_server: FeedServer
) -> None:
    settings = make_settings()
    chat = await _follower(any_sessions, settings, "customs")
    await _empty_then(any_sessions, feed_server, "/general.xml", settings)
    await _empty_then(any_sessions, feed_server, "/customs.xml", settings)
    release = _dated(OFFICIAL)
    feed_server.set_feed_body(
        "/general.xml", rss([{**release, "link": OFFICIAL_LINK + "?utm_source=rss"}])
    )
    feed_server.set_feed_body(
        "/customs.xml",
        rss(
            [
                {
                    **release,
                    "link": OFFICIAL_LINK.replace("https://", "http://") + "#content",
                    "guid": "tag:customs.example,2026:300",
                    "description": release["description"].replace("<p>", "<div>  "),
                }
            ]
        ),
    )

    reports = await poll_all(any_sessions, settings)  # both at once

    assert all(r.status == "ok" for r in reports)
    digest = await _digest_text(any_sessions, chat)
    assert digest.count(OFFICIAL["title"]) == 1
    assert digest.count("P2026100500300") == 1  # one link: the release is there once
    assert len(await search_releases(any_sessions, "cocaine")) == 1
    async with any_sessions() as s:
        matches = list((await s.exec(select(Match))).all())
        stored = list((await s.exec(select(Release))).all())
    assert len(matches) == 1
    assert sorted(r.new for r in reports) == [1, 1]  # each feed stored its own row
    assert len(stored) == 2 and sum(r.duplicate_of is None for r in stored) == 1


async def test_the_same_text_published_weeks_apart_by_two_feeds_is_two_releases(
    any_sessions: SessionFactory, feed_server: FeedServer
) -> None:
    settings = make_settings()
    one = feed_server.add_feed("/one.xml", rss([]))
    two = feed_server.add_feed("/two.xml", rss([]))
    await sync_configured_feeds(any_sessions, [one, two])
    await poll_all(any_sessions, settings)
    notice = {**OFFICIAL, "pubDate": format_datetime(utcnow() - timedelta(days=30), usegmt=True)}
    feed_server.set_feed_body("/one.xml", rss([notice]))
    await poll_all(any_sessions, settings)
    feed_server.set_feed_body(
        "/two.xml", rss([{**_dated(OFFICIAL), "guid": "tag:two.example,2026:1"}])
    )

    await poll_all(any_sessions, settings)

    assert len(await search_releases(any_sessions, "cocaine")) == 2
