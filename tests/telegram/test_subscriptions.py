"""The domain behind the commands, on SQLite and PostgreSQL: chats, subscriptions, settings."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.config import Settings
from bot.db import SessionFactory
from bot.models import Chat, MessageKind, OutboxMessage, Subscription
from bot.subscriptions import (
    ChatInputError,
    forget_chat,
    list_followed,
    register_chat,
    resolve_timezone,
    set_frequency,
    set_language,
    set_time,
    set_timezone,
    subscribe,
    unsubscribe,
)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, default_timezone="Europe/London", default_digest_time="7:15")


async def test_a_chat_is_registered_once_with_the_defaults(
    any_sessions: SessionFactory, settings: Settings
) -> None:
    first = await register_chat(any_sessions, 42, "private", None, "zh-hant", settings)
    again = await register_chat(any_sessions, 42, "private", None, "en", settings)
    assert first.id == again.id
    assert (again.language, again.timezone, again.digest_time.strftime("%H:%M")) == (
        "zh",
        "Europe/London",
        "07:15",
    )
    assert again.next_digest_at is not None


async def test_subscriptions_are_per_thread_and_limited(
    any_sessions: SessionFactory, settings: Settings
) -> None:
    chat = await register_chat(any_sessions, -100, "supergroup", "G", None, settings)
    await subscribe(any_sessions, chat, 0, "customs", 3)
    in_topic = await subscribe(any_sessions, chat, 7, "customs", 3)
    assert in_topic.created and in_topic.followed.subscription.thread_id == 7
    assert not (await subscribe(any_sessions, chat, 7, "海關", 3)).created  # the same topic
    await subscribe(any_sessions, chat, 0, "lighthouse", 3)
    with pytest.raises(ChatInputError) as refused:
        await subscribe(any_sessions, chat, 0, "harbour", 3)
    assert refused.value.key == "too_many_subscriptions"
    assert [f.subscription.thread_id for f in await list_followed(any_sessions, chat, 7)] == [7]
    removed = await unsubscribe(any_sessions, chat, 0, "2")
    assert removed is not None and removed.subscription.query_text == "lighthouse"
    assert await unsubscribe(any_sessions, chat, 0, "lighthouse") is None


async def test_settings_are_checked_and_reschedule_the_digest(
    any_sessions: SessionFactory, settings: Settings
) -> None:
    chat = await register_chat(any_sessions, 43, "private", None, "en", settings)
    before = chat.next_digest_at
    chat = await set_time(any_sessions, chat, "0830")
    chat = await set_timezone(any_sessions, chat, "asia/hong_kong")
    assert (chat.digest_time.strftime("%H:%M"), chat.timezone) == ("08:30", "Asia/Hong_Kong")
    assert chat.next_digest_at != before
    chat = await set_frequency(any_sessions, chat, "INSTANT")
    assert chat.next_digest_at is None
    chat = await set_language(any_sessions, chat, "zh")
    assert chat.language == "zh"
    for call, value in (
        (set_time, "24:00"),
        (set_timezone, "Mars/Olympus"),
        (set_frequency, "hourly"),
    ):
        with pytest.raises(ChatInputError):
            await call(any_sessions, chat, value)


def test_timezone_names_are_found_whatever_their_case() -> None:
    assert resolve_timezone(" america/new_york ") == "America/New_York"
    assert resolve_timezone("Asia/Hong Kong") == "Asia/Hong_Kong"
    with pytest.raises(ChatInputError):
        resolve_timezone("../../etc/passwd")


async def test_forget_chat_deletes_its_subscriptions_and_queue(
    any_sessions: SessionFactory, settings: Settings
) -> None:
    chat = await register_chat(any_sessions, 44, "private", None, "en", settings)
    other = await register_chat(any_sessions, 45, "private", None, "en", settings)
    await subscribe(any_sessions, chat, 0, "customs", 50)
    await subscribe(any_sessions, other, 0, "customs", 50)
    async with any_sessions() as s:
        s.add(OutboxMessage(chat_id=chat.id, text="x", kind=MessageKind.notice))  # type: ignore[arg-type]
        s.add(OutboxMessage(chat_id=other.id, text="y", kind=MessageKind.notice))  # type: ignore[arg-type]
        await s.commit()
    await forget_chat(any_sessions, chat)
    async with any_sessions() as s:
        assert [c.telegram_id for c in (await s.exec(select(Chat))).all()] == [45]
        assert [m.text for m in (await s.exec(select(OutboxMessage))).all()] == ["y"]
        assert len((await s.exec(select(Subscription))).all()) == 1


def test_timezone_names_that_are_not_places_are_refused() -> None:
    # "localtime" is whatever zone the server runs in; "Factory" is a placeholder zone
    for name in ("localtime", "Factory", "posixrules"):
        with pytest.raises(ChatInputError):
            resolve_timezone(name)
    assert resolve_timezone("utc") == "UTC"


async def test_one_migration_rule_whoever_learns_of_it_first(
    any_sessions: SessionFactory, settings: Settings
) -> None:
    from datetime import time

    from bot.delivery.outbox import enqueue
    from bot.subscriptions import follow_migration, get_chat, set_time

    old = await register_chat(any_sessions, -500, "group", "G", "en", settings)
    await set_time(any_sessions, old, "06:45")
    await subscribe(any_sessions, old, 0, "customs", 50)
    await subscribe(any_sessions, old, 0, "typhoon", 50)
    # the supergroup's first command came before the migration: a row of its own
    fresh = await register_chat(any_sessions, -100500, "supergroup", "G", "en", settings)
    await subscribe(any_sessions, fresh, 0, "customs", 50)
    await subscribe(any_sessions, fresh, 0, "lighthouse keeper", 50)
    async with any_sessions() as s:
        await enqueue(s, fresh.id or 0, "queued in the supergroup", kind=MessageKind.notice)
        await s.commit()

    await follow_migration(any_sessions, -500, -100500)  # migrate_to_chat_id, in the old group
    await follow_migration(any_sessions, -500, -100500)  # migrate_from_chat_id: changes nothing

    assert await get_chat(any_sessions, -500) is None
    merged = await get_chat(any_sessions, -100500)
    assert merged is not None and merged.id == old.id
    assert (merged.type, merged.digest_time, merged.active) == ("supergroup", time(6, 45), True)
    followed = sorted(
        item.subscription.query_text for item in await list_followed(any_sessions, merged)
    )
    assert followed == ["customs", "lighthouse keeper", "typhoon"]
    async with any_sessions() as s:
        queued = (await s.exec(select(OutboxMessage))).all()
    assert [(m.chat_id, m.text) for m in queued] == [(old.id, "queued in the supergroup")]
