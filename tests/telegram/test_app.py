"""The running bot: startup against a sparse Bot API server, the digest tick, chat migration."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bot.db import SessionFactory
from bot.models import Chat, Subscription, utcnow
from bot.subscriptions import register_chat, subscribe
from tests.doubles.telegram_api import BotAPIDouble
from tests.telegram.conftest import GROUP_ID, USER_ID, Bot, make_settings, start_bot


async def test_the_bot_answers_when_the_server_lacks_set_my_commands(
    api: BotAPIDouble, sessions: SessionFactory, sqlite_url: str
) -> None:
    api.fail_next("setMyCommands", status=404, description="Not Found", times=4)
    stop = asyncio.Event()
    task = await start_bot(make_settings(api, sqlite_url), sessions, stop)
    try:
        bot = Bot(api, sessions, make_settings(api, sqlite_url))
        assert (await bot.say(USER_ID, "/start")).text.startswith("Hello!")
        assert api.commands == {}
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_the_digest_tick_sends_a_due_digest_unasked(
    api: BotAPIDouble, sessions: SessionFactory, sqlite_url: str
) -> None:
    settings = make_settings(api, sqlite_url)
    chat = await register_chat(sessions, USER_ID, "private", None, "en", settings)
    result = await subscribe(sessions, chat, 0, "customs", settings.max_subscriptions)
    bot = Bot(api, sessions, settings)
    async with sessions() as s:
        subscription = await s.get(Subscription, result.followed.subscription.id)
        assert subscription is not None
        subscription.created_at = utcnow() - timedelta(hours=1)
        s.add(subscription)
        await s.commit()
    # stored and matched five minutes ago, since the chat subscribed
    await bot.add_release(
        "Customs seizes smuggled cigarettes",
        topic_query=result.followed.topic.query,
        days_ago=5 / (24 * 60),
    )
    async with sessions() as s:
        stored = await s.get(Chat, chat.id)
        assert stored is not None
        stored.next_digest_at = utcnow() - timedelta(minutes=1)
        s.add(stored)
        await s.commit()
    stop = asyncio.Event()
    started = time.monotonic()
    task = await start_bot(settings, sessions, stop)
    try:
        digest = (await api.wait_for_message(USER_ID, timeout=10))[0]
        assert "Customs seizes smuggled cigarettes" in digest.text
        assert digest.link_preview_disabled
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_a_group_that_becomes_a_supergroup_keeps_its_topics(bot: Bot) -> None:
    new_id = -100_999_888
    bot.api.set_chat_member_status(GROUP_ID, USER_ID, "administrator")
    await bot.say(GROUP_ID, "/subscribe customs", user_id=USER_ID, chat_type="group")
    bot.api.migrate_chat(GROUP_ID, new_id)
    bot.api.push_update(
        {
            "message": {
                "message_id": 99,
                "date": int(time.time()),
                "chat": {"id": GROUP_ID, "type": "group", "title": "Test group"},
                "from": {"id": USER_ID, "is_bot": False, "first_name": "Test"},
                "migrate_to_chat_id": new_id,
            }
        }
    )
    listed = await bot.say(new_id, "/list", user_id=USER_ID, chat_type="supergroup")
    assert "1. Customs" in listed.text
    assert await bot.chat(GROUP_ID) is None
