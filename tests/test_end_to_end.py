"""The whole pipeline as a subscriber sees it: a feed changes, and each follower gets one digest.

feed server → poll → store → match → digest tick → outbox → sender → Bot API double,
on SQLite and on PostgreSQL, with Telegram's per-chat and per-group flood limits on.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from bot.config import Settings
from bot.db import SessionFactory
from bot.delivery.sender import DeliveryLimits, Sender
from bot.delivery.telegram_transport import TelegramTransport
from bot.digest.service import queue_due_digests
from bot.feeds.poller import sync_configured_feeds
from bot.models import utcnow
from bot.pipeline import poll_all
from bot.subscriptions import register_chat, subscribe
from tests.doubles.feed_server import FeedServer
from tests.doubles.telegram_api import BotAPIDouble

CHATS = 500


def _releases(feeds_dir: Path, suffix: str, published: datetime | None = None) -> bytes:
    """The HK seed feed's two releases under new links and guids: the same text, new news.

    With `published`, they are dated then: a release published before its feed was added
    is history, never announced.
    """
    body = (feeds_dir / "hk-gia-general-en-seed.xml").read_text(encoding="utf-8")
    body = re.sub(r"(P\d{10,})", lambda m: m.group(1) + suffix, body)
    if published is not None:
        date = format_datetime(published, usegmt=True)
        body = re.sub(r"<pubDate>[^<]*</pubDate>", f"<pubDate>{date}</pubDate>", body)
    return body.encode("utf-8")


def _no_items(feeds_dir: Path) -> bytes:
    """The HK seed feed as it is before its first release: a valid channel, no items."""
    body = (feeds_dir / "hk-gia-general-en-seed.xml").read_text(encoding="utf-8")
    return re.sub(r"<item>.*?</item>", "", body, flags=re.DOTALL).encode("utf-8")


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return Settings(
        bot_token="123456:TEST-token-abcdefghijklmnopqrstuvwxyz",
        database_url=sqlite_url,
        fetch_timeout=10,
        send_rate=400,
    )


async def test_each_follower_gets_exactly_one_valid_digest_of_what_is_new(
    any_sessions: SessionFactory, settings: Settings, feeds_dir: Path
) -> None:
    async with (
        FeedServer() as feeds,
        BotAPIDouble(flood_limits=True, global_per_second=1000, chat_burst=1) as api,
    ):
        url = feeds.add_feed("/general_en.xml", _releases(feeds_dir, ""), etag='"v1"')
        await sync_configured_feeds(any_sessions, [url])

        # what the feed holds before anyone follows it is not news
        [first] = await poll_all(any_sessions, settings)
        assert (first.status, first.new) == ("ok", 2)

        followers: dict[int, str] = {}
        for n in range(CHATS):
            telegram_id = 10_000 + n if n % 10 else -100_000 - n  # every tenth is a group
            kind = "private" if telegram_id > 0 else "supergroup"
            chat = await register_chat(any_sessions, telegram_id, kind, None, "en", settings)
            query = "customs" if n % 2 else '"national security"'
            await subscribe(any_sessions, chat, 0, query, settings.max_subscriptions)
            followers[telegram_id] = query
        assert await queue_due_digests(any_sessions, force=True) == 0

        # the feed publishes both releases again under new links: two new releases
        feeds.set_feed_body(
            "/general_en.xml", _releases(feeds_dir, "1", published=utcnow()), etag='"v2"'
        )
        [second] = await poll_all(any_sessions, settings)
        assert (second.status, second.new) == ("ok", 2)

        assert await queue_due_digests(any_sessions, force=True) == CHATS
        async with api.ptb_bot() as bot:
            sender = Sender(
                any_sessions, TelegramTransport(bot), settings, limits=DeliveryLimits(send_rate=400)
            )
            stats = await sender.drain(timeout=120)
        assert stats.sent == CHATS and stats.failed == 0

        for telegram_id, query in followers.items():
            [digest] = api.messages_to(telegram_id)
            assert digest.link_preview_disabled
            if query == "customs":
                assert "e-commerce" in digest.text.lower()
                assert "national security" not in digest.text.lower()
            else:
                assert "national security" in digest.text.lower()
        assert not [c for c in api.calls if c.method == "sendMessage" and c.status == 400]
        assert api.spec_violations == []

        # nothing new since: no second digest
        assert await queue_due_digests(any_sessions, force=True) == 0


async def test_the_command_line_polls_then_sends_each_follower_its_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], feeds_dir
) -> None:
    """`press-digest poll` then `press-digest send-digests --now`, as an operator runs them."""
    import asyncio

    from bot.cli import main
    from bot.db import open_database

    monkeypatch.chdir(tmp_path)
    async with FeedServer() as feeds, BotAPIDouble() as api:
        url = feeds.add_feed("/general_en.xml", _releases(feeds_dir, ""))
        monkeypatch.setenv("FEEDS", url)
        monkeypatch.setenv("BOT_TOKEN", api.token)
        monkeypatch.setenv("TELEGRAM_API_URL", api.base_url)
        monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'pd.db'}")
        monkeypatch.setenv("LOG_LEVEL", "WARNING")

        assert await asyncio.to_thread(main, ["poll"]) == 0
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'pd.db'}")
        async with open_database(settings.database_url) as (_, sessions):
            chat = await register_chat(sessions, 777, "private", None, "zh-hant", settings)
            await subscribe(sessions, chat, 0, "海關", settings.max_subscriptions)

        feeds.set_feed_body("/general_en.xml", _releases(feeds_dir, "7", published=utcnow()))
        assert await asyncio.to_thread(main, ["poll"]) == 0
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["send-digests", "--now"]) == 0
        assert capsys.readouterr().out.strip().startswith("queued 1, sent 1, blocked 0, failed 0")
        [digest] = api.messages_to(777)
        assert "E-commerce" in digest.text  # 海關 follows Customs in English too
        assert "摘要" in digest.text  # the chat speaks Chinese

        assert await asyncio.to_thread(main, ["send-digests", "--now"]) == 0
        assert capsys.readouterr().out.strip().startswith("queued 0, sent 0")
        assert len(api.messages_to(777)) == 1


async def test_a_feed_that_starts_empty_brings_its_first_releases_to_earlier_followers(
    any_sessions: SessionFactory, settings: Settings, feeds_dir: Path
) -> None:
    """A new feed with no items yet, a subscriber who follows customs, then the first
    releases: they are news (published after the feed was added), sent once."""
    async with FeedServer() as feeds, BotAPIDouble() as api:
        url = feeds.add_feed("/general_en.xml", _no_items(feeds_dir), etag='"v0"')
        await sync_configured_feeds(any_sessions, [url])
        [empty] = await poll_all(any_sessions, settings)
        assert (empty.status, empty.new, empty.error) == ("ok", 0, None)

        chat = await register_chat(any_sessions, 4242, "private", None, "en", settings)
        await subscribe(any_sessions, chat, 0, "customs", settings.max_subscriptions)
        assert await queue_due_digests(any_sessions, force=True) == 0

        feeds.set_feed_body(
            "/general_en.xml", _releases(feeds_dir, "", published=utcnow()), etag='"v1"'
        )
        [first] = await poll_all(any_sessions, settings)
        assert (first.status, first.new) == ("ok", 2)

        assert await queue_due_digests(any_sessions, force=True) == 1
        async with api.ptb_bot() as bot:
            sender = Sender(
                any_sessions, TelegramTransport(bot), settings, limits=DeliveryLimits(send_rate=400)
            )
            stats = await sender.drain(timeout=30)
        assert stats.sent == 1 and stats.failed == 0
        [digest] = api.messages_to(4242)
        assert "e-commerce" in digest.text.lower()
        assert "national security" not in digest.text.lower()

        [again] = await poll_all(any_sessions, settings)
        assert again.status == "not_modified"
        assert await queue_due_digests(any_sessions, force=True) == 0
        assert len(api.messages_to(4242)) == 1
