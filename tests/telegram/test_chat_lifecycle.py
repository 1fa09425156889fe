"""Chats that come and go: the bot added, removed, blocked, unblocked; /stop; migrations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlmodel import select

from bot.delivery.broadcast import queue_broadcast
from bot.delivery.outbox import enqueue
from bot.models import Chat, MessageKind, MessageState, OutboxMessage, utcnow
from tests.telegram.conftest import ADMIN_ID, FORUM_ID, GROUP_ID, OTHER_USER_ID, USER_ID, Bot

GROUP = {"user_id": USER_ID, "chat_type": "supergroup"}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Waits until the bot's database says `check`; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{check.__qualname__} still false after {timeout}s"
        await asyncio.sleep(0.02)


async def queue_later(bot: Bot, telegram_id: int, text: str) -> None:
    """A message in the outbox for this chat, due in a minute (a digest waiting its time)."""
    chat = await bot.chat(telegram_id)
    assert chat is not None and chat.id is not None
    async with bot.sessions() as s:
        await enqueue(
            s,
            chat.id,
            text,
            kind=MessageKind.digest,
            not_before=utcnow() + timedelta(minutes=1),
        )
        await s.commit()


async def outbox_states(bot: Bot, telegram_id: int) -> list[str]:
    async with bot.sessions() as s:
        rows = await s.exec(
            select(OutboxMessage.state)
            .join(Chat, Chat.id == OutboxMessage.chat_id)  # type: ignore[arg-type]
            .where(Chat.telegram_id == telegram_id)
        )
        return list(rows.all())


async def is_active(bot: Bot, telegram_id: int) -> bool:
    chat = await bot.chat(telegram_id)
    return chat is not None and chat.active


async def is_inactive(bot: Bot, telegram_id: int) -> bool:
    chat = await bot.chat(telegram_id)
    return chat is not None and not chat.active


async def subscribed_group(bot: Bot) -> None:
    bot.api.set_chat_member_status(GROUP_ID, USER_ID, "administrator")
    reply = await bot.say(GROUP_ID, "/subscribe customs", **GROUP)
    assert reply.text.startswith("Following Customs")


# --- my_chat_member -----------------------------------------------------------------------


async def test_a_group_that_adds_the_bot_is_greeted_in_its_language(bot: Bot) -> None:
    bot.api.push_my_chat_member(
        GROUP_ID, "left", "member", user_id=USER_ID, chat_type="group", language_code="zh-hant"
    )
    (greeting,) = await bot.api.wait_for_message(GROUP_ID)
    assert greeting.text.startswith("你好")
    assert "/subscribe" in greeting.text and greeting.reply_markup is not None

    other_group = GROUP_ID - 1
    bot.api.push_my_chat_member(other_group, "left", "administrator", chat_type="supergroup")
    (greeting,) = await bot.api.wait_for_message(other_group)
    assert greeting.text.startswith("Hello!")
    assert "1. Follow a topic: /subscribe customs" in greeting.text


async def test_a_group_added_again_is_greeted_in_the_language_it_chose(bot: Bot) -> None:
    await subscribed_group(bot)
    await bot.say(GROUP_ID, "/lang zh", **GROUP)
    bot.api.push_my_chat_member(GROUP_ID, "member", "left", user_id=USER_ID)
    await eventually(lambda: is_inactive(bot, GROUP_ID))
    before = len(bot.api.messages_to(GROUP_ID))

    bot.api.push_my_chat_member(GROUP_ID, "left", "member", user_id=USER_ID, language_code="en")

    greeting = (await bot.api.wait_for_message(GROUP_ID, count=before + 1))[before]
    assert greeting.text.startswith("你好")


async def test_a_group_that_removes_the_bot_is_inactive_at_once_and_gets_nothing_queued(
    bot: Bot,
) -> None:
    await subscribed_group(bot)
    await queue_later(bot, GROUP_ID, "tomorrow's digest")

    bot.api.push_my_chat_member(GROUP_ID, "member", "left", user_id=USER_ID)

    await eventually(lambda: is_inactive(bot, GROUP_ID))
    assert await outbox_states(bot, GROUP_ID) == [MessageState.dropped]
    broadcast = await queue_broadcast(bot.sessions, "<b>News</b>", ADMIN_ID)
    assert broadcast.total == 0
    assert len(await bot.subscriptions(GROUP_ID)) == 1  # kept for its return


async def test_a_group_that_bans_the_bot_is_inactive_at_once(bot: Bot) -> None:
    await subscribed_group(bot)
    bot.api.push_my_chat_member(GROUP_ID, "administrator", "kicked", user_id=USER_ID)
    await eventually(lambda: is_inactive(bot, GROUP_ID))


async def test_a_group_that_adds_the_bot_again_has_its_topics_back(bot: Bot) -> None:
    await subscribed_group(bot)
    bot.api.push_my_chat_member(GROUP_ID, "member", "left", user_id=USER_ID)
    await eventually(lambda: is_inactive(bot, GROUP_ID))

    bot.api.push_my_chat_member(GROUP_ID, "left", "member", user_id=USER_ID)

    await eventually(lambda: is_active(bot, GROUP_ID))
    listed = await bot.say(GROUP_ID, "/list", **GROUP)
    assert "1. Customs" in listed.text
    assert (await queue_broadcast(bot.sessions, "<b>News</b>", ADMIN_ID)).total == 1


async def test_a_user_who_blocks_the_bot_gets_nothing_until_they_unblock_it(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    await queue_later(bot, USER_ID, "tomorrow's digest")

    bot.api.push_my_chat_member(USER_ID, "member", "kicked")
    await eventually(lambda: is_inactive(bot, USER_ID))
    assert await outbox_states(bot, USER_ID) == [MessageState.dropped]
    assert (await queue_broadcast(bot.sessions, "<b>News</b>", ADMIN_ID)).total == 0

    sent_before = len(bot.api.messages_to(USER_ID))
    bot.api.push_my_chat_member(USER_ID, "kicked", "member")
    await eventually(lambda: is_active(bot, USER_ID))
    chat = await bot.chat(USER_ID)
    assert chat is not None and chat.next_digest_at is not None
    assert chat.next_digest_at > utcnow()  # the next digest, not the ones missed meanwhile
    listed = await bot.say(USER_ID, "/list")
    assert "1. Customs" in listed.text
    # unblocking is not a conversation: the only new message is the /list reply
    assert len(bot.api.messages_to(USER_ID)) == sent_before + 1


async def test_promoting_the_bot_changes_nothing(bot: Bot) -> None:
    await subscribed_group(bot)
    sent_before = len(bot.api.messages_to(GROUP_ID))
    bot.api.push_my_chat_member(GROUP_ID, "member", "administrator", user_id=USER_ID)
    listed = await bot.say(GROUP_ID, "/list", **GROUP)
    assert "1. Customs" in listed.text
    assert len(bot.api.messages_to(GROUP_ID)) == sent_before + 1  # no greeting
    assert await is_active(bot, GROUP_ID)


# --- /stop --------------------------------------------------------------------------------


async def test_after_stop_a_group_is_not_enrolled_again_by_read_only_commands(bot: Bot) -> None:
    await subscribed_group(bot)
    assert (await bot.stop(GROUP_ID, **GROUP)).startswith("Done: I forgot")

    member = {"user_id": OTHER_USER_ID, "chat_type": "supergroup"}
    assert "Nothing is followed here" in (await bot.say(GROUP_ID, "/list", **member)).text
    assert "/subscribe" in (await bot.say(GROUP_ID, "/help", **member)).text
    assert (await bot.say(GROUP_ID, "/start", **member)).text.startswith("Hello!")
    await bot.say(GROUP_ID, "/search customs", **member)
    await bot.say(GROUP_ID, "/list", **GROUP)  # an administrator's look changes nothing either
    refused = await bot.say(GROUP_ID, "/subscribe customs", **member)
    assert refused.text.startswith("Only this group's administrators")

    assert await bot.chat(GROUP_ID) is None
    assert (await queue_broadcast(bot.sessions, "<b>News</b>", ADMIN_ID)).total == 0


async def test_after_stop_a_change_enrols_the_group_again(bot: Bot) -> None:
    await subscribed_group(bot)
    await bot.stop(GROUP_ID, **GROUP)

    reply = await bot.say(GROUP_ID, "/time 09:00", **GROUP)

    assert reply.text.startswith("Digest every day at 09:00")
    assert await is_active(bot, GROUP_ID)
    assert await bot.subscriptions(GROUP_ID) == []  # /stop forgot them
    assert (await queue_broadcast(bot.sessions, "<b>News</b>", ADMIN_ID)).total == 1


async def test_a_group_that_stopped_and_adds_the_bot_again_is_greeted_not_enrolled(
    bot: Bot,
) -> None:
    await subscribed_group(bot)
    await bot.stop(GROUP_ID, **GROUP)
    bot.api.push_my_chat_member(GROUP_ID, "member", "left", user_id=USER_ID)
    before = len(bot.api.messages_to(GROUP_ID))

    bot.api.push_my_chat_member(GROUP_ID, "left", "member", user_id=USER_ID)

    greeting = (await bot.api.wait_for_message(GROUP_ID, count=before + 1))[before]
    assert greeting.text.startswith("Hello!")
    assert await bot.chat(GROUP_ID) is None
    answer = await bot.press(GROUP_ID, USER_ID, "v1:sub:customs", greeting.message_id)
    assert answer.text is not None and answer.text.startswith("Following Customs")
    assert await is_active(bot, GROUP_ID)


async def test_after_stop_a_private_start_begins_again(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    await bot.stop(USER_ID)
    await bot.say(USER_ID, "/help")
    assert await bot.chat(USER_ID) is None

    await bot.say(USER_ID, "/start")

    assert await is_active(bot, USER_ID)
    assert await bot.subscriptions(USER_ID) == []


# --- migration to a supergroup ------------------------------------------------------------


async def test_a_supergroup_whose_first_command_comes_before_the_migration_keeps_its_topics(
    bot: Bot,
) -> None:
    new_id = -100_999_777
    bot.api.set_chat_member_status(GROUP_ID, USER_ID, "administrator")
    bot.api.set_chat_member_status(new_id, USER_ID, "administrator")
    await bot.say(GROUP_ID, "/subscribe customs", user_id=USER_ID, chat_type="group")
    await bot.say(GROUP_ID, "/time 07:30", user_id=USER_ID, chat_type="group")
    bot.api.migrate_chat(GROUP_ID, new_id)

    # the supergroup speaks first; Telegram's two service messages are handled after it
    reply = await bot.say(
        new_id, "/subscribe lighthouse keeper", user_id=USER_ID, chat_type="supergroup"
    )
    assert reply.text.startswith("Following lighthouse keeper")
    bot.api.migrate_chat(GROUP_ID, new_id, notify=True)
    listed = await bot.say(new_id, "/list", user_id=USER_ID, chat_type="supergroup")

    assert "1. Customs" in listed.text and "2. lighthouse keeper" in listed.text
    assert "07:30" in listed.text  # the group's settings came along
    assert await bot.chat(GROUP_ID) is None
    assert len(await bot.subscriptions(new_id)) == 2


# --- forum topics -------------------------------------------------------------------------


async def test_a_closed_forum_topic_gets_its_digest_in_the_main_thread(bot: Bot) -> None:
    from bot.models import Topic

    bot.api.set_chat_member_status(FORUM_ID, USER_ID, "administrator")
    forum = {"user_id": USER_ID, "chat_type": "supergroup", "is_forum": True}
    await bot.say(FORUM_ID, "/subscribe customs", thread_id=77, **forum)
    async with bot.sessions() as s:
        topic = (await s.exec(select(Topic).where(Topic.label.startswith("Customs")))).one()
    await bot.add_release("Customs seizes smuggled cigarettes", topic_query=topic.query)
    bot.api.close_topic(FORUM_ID, 77)

    bot.api.push_message(FORUM_ID, "/digest", thread_id=77, **forum)  # an admin still may

    def general() -> list[str]:
        return [m.text for m in bot.api.messages_to(FORUM_ID) if m.message_thread_id is None]

    await bot.api.wait_for(lambda: any("cigarettes" in text for text in general()), timeout=10)
    note, digest = general()[-2:]
    assert note == "This topic is closed; digests for it now come here."
    assert "Customs seizes smuggled cigarettes" in digest
    listed = await bot.say(FORUM_ID, "/list", **forum)  # the main thread follows it now
    assert "1. Customs" in listed.text
