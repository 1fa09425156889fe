"""What the Mini App adds to the domain: a weekly day of one's choosing, and a query preview."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.db import SessionFactory
from bot.models import Release, utcnow
from bot.subscriptions import (
    ChatInputError,
    preview_subscription,
    register_chat,
    set_frequency,
)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, default_timezone="Asia/Hong_Kong")


@pytest.mark.parametrize(
    ("text", "weekday"),
    [("weekly monday", 0), ("weekly Wed", 2), ("WEEKLY sunday", 6), ("weekly 星期五", 4)],
)
async def test_weekly_with_a_day_picks_that_weekday(
    sessions: SessionFactory, settings: Settings, text: str, weekday: int
) -> None:
    chat = await register_chat(sessions, 42, "private", None, "en", settings)
    chat = await set_frequency(sessions, chat, text)
    assert (chat.frequency, chat.digest_weekday) == ("weekly", weekday)
    assert chat.next_digest_at is not None
    local = chat.next_digest_at.astimezone(ZoneInfo("Asia/Hong_Kong"))
    assert local.weekday() == weekday


async def test_a_weekday_passed_apart_from_the_text_is_kept(
    sessions: SessionFactory, settings: Settings
) -> None:
    chat = await register_chat(sessions, 42, "private", None, "en", settings)
    chat = await set_frequency(sessions, chat, "weekly", weekday=3)
    assert chat.digest_weekday == 3
    chat = await set_frequency(sessions, chat, "weekly")  # already weekly: the day stays
    assert chat.digest_weekday == 3


@pytest.mark.parametrize(
    ("text", "key"),
    [("weekly someday", "weekday_invalid"), ("daily monday", "frequency_invalid")],
)
async def test_a_bad_weekday_changes_nothing(
    sessions: SessionFactory, settings: Settings, text: str, key: str
) -> None:
    chat = await register_chat(sessions, 42, "private", None, "en", settings)
    with pytest.raises(ChatInputError) as caught:
        await set_frequency(sessions, chat, text)
    assert caught.value.key == key
    with pytest.raises(ChatInputError):
        await set_frequency(sessions, chat, "weekly", weekday=7)
    from bot.subscriptions import get_chat

    stored = await get_chat(sessions, 42)
    assert stored is not None and stored.frequency == "daily"


async def test_a_preview_says_what_the_query_means_and_shows_recent_matches(
    sessions: SessionFactory,
) -> None:
    now = utcnow()
    async with sessions() as s:
        for n, title in enumerate(["Customs seize cigarettes", "Weather report", "海關檢獲毒品"]):
            s.add(
                Release(
                    link=f"https://www.info.gov.hk/{n}.htm",
                    guid=str(n),
                    title=title,
                    published_at=now - timedelta(hours=n),
                    content_hash=str(n),
                )
            )
        await s.commit()
    preview = await preview_subscription(sessions, "customs")
    assert "海關" in preview.aliases
    assert [r.title for r in preview.recent] == ["Customs seize cigarettes", "海關檢獲毒品"]
    from bot.matching.query import QueryError

    with pytest.raises(QueryError):  # the same one-line reason /subscribe gives
        await preview_subscription(sessions, '"unclosed')
    with pytest.raises(ChatInputError):
        await preview_subscription(sessions, "x" * 201)
