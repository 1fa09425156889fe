"""Corrections: a release a chat already received comes once more, marked, when its publisher
corrects it (the title, a number or a date); an unchanged re-publication sends nothing.

Through the real poller, feed server, matching, digest and instant alert code.
"""

from __future__ import annotations

from email.utils import format_datetime

from bot.db import SessionFactory
from bot.digest.service import queue_digest_now
from bot.feeds.poller import sync_configured_feeds
from bot.models import Chat, Frequency, utcnow
from bot.pipeline import poll_all
from bot.subscriptions import register_chat, set_frequency, subscribe
from tests.delivery.helpers import queued_texts
from tests.doubles.feed_server import FeedServer, rss
from tests.feeds.conftest import make_settings

LINK = "https://www.info.gov.hk/gia/general/202612/03/P2026120300400.htm"
RELEASE = {
    "title": "Customs seizes suspected cannabis worth $3 million",
    "link": LINK,
    "guid": LINK,
    "description": "<p>Hong Kong Customs yesterday (December 2) seized about 10 kilograms of "
    "suspected cannabis buds with an estimated market value of about $3 million.</p>",
}


async def _set_up(sessions: SessionFactory, server: FeedServer, *, instant: bool = False):
    settings = make_settings()
    url = server.add_feed("/gia.xml", rss([]))
    await sync_configured_feeds(sessions, [url])
    await poll_all(sessions, settings)  # the feed exists before it publishes
    chats = []
    for telegram_id, language in ((7001, "en"), (7002, "zh")):
        chat = await register_chat(sessions, telegram_id, "private", None, language, settings)
        await subscribe(sessions, chat, 0, "customs", settings.max_subscriptions)
        if instant:
            chat = await set_frequency(sessions, chat, Frequency.instant.value)
        chats.append(chat)
    release = {**RELEASE, "pubDate": format_datetime(utcnow(), usegmt=True)}
    server.set_feed_body("/gia.xml", rss([release]))
    await poll_all(sessions, settings)
    return settings, chats, release


async def _digest(sessions: SessionFactory, chat: Chat) -> list[str]:
    assert chat.id is not None
    before = len(await queued_texts(sessions, chat))
    await queue_digest_now(sessions, chat.id)
    return (await queued_texts(sessions, chat))[before:]


async def test_a_corrected_figure_comes_once_more_marked_in_the_next_digest(
    any_sessions: SessionFactory, feed_server: FeedServer
) -> None:
    settings, (en, zh), release = await _set_up(any_sessions, feed_server)
    [first] = await _digest(any_sessions, en)
    [first_zh] = await _digest(any_sessions, zh)
    assert "$3 million" in first and "Corrected" not in first
    assert "更正" not in first_zh

    corrected = {**release, "description": release["description"].replace("$3", "$30")}
    corrected["title"] = release["title"].replace("$3", "$30")
    feed_server.set_feed_body("/gia.xml", rss([corrected]))
    await poll_all(any_sessions, settings)

    [again] = await _digest(any_sessions, en)
    [again_zh] = await _digest(any_sessions, zh)
    assert "Corrected:" in again and "$30 million" in again
    assert "更正：" in again_zh and "$30 million" in again_zh
    assert await _digest(any_sessions, en) == []  # once, not in every digest after


async def test_an_unchanged_republication_or_a_whitespace_edit_sends_nothing(
    any_sessions: SessionFactory, feed_server: FeedServer
) -> None:
    settings, (en, _zh), release = await _set_up(any_sessions, feed_server)
    assert len(await _digest(any_sessions, en)) == 1
    feed_server.set_feed_body("/gia.xml", rss([release]))  # the same again
    await poll_all(any_sessions, settings)
    spaced = {**release, "description": release["description"].replace(" about", "  about")}
    feed_server.set_feed_body("/gia.xml", rss([spaced]))
    await poll_all(any_sessions, settings)
    assert await _digest(any_sessions, en) == []


async def test_a_chat_that_never_had_the_release_gets_it_once_unmarked(
    any_sessions: SessionFactory, feed_server: FeedServer
) -> None:
    settings, (en, _zh), release = await _set_up(any_sessions, feed_server)
    # no digest yet: the chat has not received it when the correction arrives
    corrected = {**release, "title": release["title"].replace("$3", "$30")}
    feed_server.set_feed_body("/gia.xml", rss([corrected]))
    await poll_all(any_sessions, settings)
    [only] = await _digest(any_sessions, en)
    assert "$30 million" in only and "Corrected" not in only
    assert only.count(LINK) == 1


async def test_instant_chats_get_the_correction_at_once_marked(
    any_sessions: SessionFactory, feed_server: FeedServer
) -> None:
    settings, (en, zh), release = await _set_up(any_sessions, feed_server, instant=True)
    [alert] = await queued_texts(any_sessions, en)
    assert "$3 million" in alert and "Corrected" not in alert

    corrected = {**release, "title": "Customs seizes suspected cannabis worth $30 million"}
    feed_server.set_feed_body("/gia.xml", rss([corrected]))
    await poll_all(any_sessions, settings)
    await poll_all(any_sessions, settings)  # polled again, unchanged: nothing more

    texts = await queued_texts(any_sessions, en)
    assert len(texts) == 2 and "Corrected:" in texts[1] and "$30 million" in texts[1]
    zh_texts = await queued_texts(any_sessions, zh)
    assert len(zh_texts) == 2 and "更正：" in zh_texts[1]
