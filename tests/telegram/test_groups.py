"""Groups and forum topics: only administrators change things; topics keep their own threads."""

from __future__ import annotations

from sqlmodel import select

from bot.models import Topic
from tests.telegram.conftest import FORUM_ID, GROUP_ID, OTHER_USER_ID, USER_ID, Bot

ADMINS_ONLY = "Only this group's administrators can change its topics or settings."


async def test_a_member_may_not_change_a_group(bot: Bot) -> None:
    for command in (
        "/subscribe customs",
        "/time 09:00",
        "/timezone Europe/Paris",
        "/pause",
        "/stop",
    ):
        reply = await bot.say(GROUP_ID, command, user_id=USER_ID, chat_type="group")
        assert reply.text == ADMINS_ONLY, command
    assert await bot.subscriptions(GROUP_ID) == []
    assert await bot.chat(GROUP_ID) is None  # a refused change stores nothing, not even the chat


async def test_read_only_commands_answer_every_member(bot: Bot) -> None:
    assert (
        "Nothing is followed here"
        in (await bot.say(GROUP_ID, "/list", user_id=USER_ID, chat_type="group")).text
    )
    assert (
        "/subscribe" in (await bot.say(GROUP_ID, "/help", user_id=USER_ID, chat_type="group")).text
    )
    assert "Hello" in (await bot.say(GROUP_ID, "/start", user_id=USER_ID, chat_type="group")).text
    await bot.add_release("Customs seizes ivory", link="https://www.info.gov.hk/gia/i.htm")
    found = await bot.say(GROUP_ID, "/search customs", user_id=USER_ID, chat_type="group")
    assert "Customs seizes ivory" in found.text


async def test_administrators_and_the_creator_may_change_a_group(bot: Bot) -> None:
    bot.api.set_chat_member_status(GROUP_ID, USER_ID, "administrator")
    bot.api.set_chat_member_status(GROUP_ID, OTHER_USER_ID, "creator")
    reply = await bot.say(GROUP_ID, "/subscribe customs", user_id=USER_ID, chat_type="supergroup")
    assert reply.text.startswith("Following Customs")
    reply = await bot.say(GROUP_ID, "/time 09:30", user_id=OTHER_USER_ID, chat_type="supergroup")
    assert reply.text.startswith("Digest every day at 09:30")
    assert len(await bot.subscriptions(GROUP_ID)) == 1


async def test_an_anonymous_administrator_counts_as_an_administrator(bot: Bot) -> None:
    group = {"id": GROUP_ID, "type": "supergroup", "title": "Test group"}
    reply = await bot.say(
        GROUP_ID,
        "/subscribe customs",
        user_id=1087968824,  # GroupAnonymousBot
        chat_type="supergroup",
        extra={"sender_chat": group},
    )
    assert reply.text.startswith("Following Customs")


async def test_plain_text_in_a_group_is_ignored(bot: Bot) -> None:
    bot.api.push_message(GROUP_ID, "good morning everyone", user_id=USER_ID, chat_type="group")
    bot.api.push_message(GROUP_ID, "/weather", user_id=USER_ID, chat_type="group")
    await bot.say(GROUP_ID, "/help", user_id=USER_ID, chat_type="group")
    assert len(bot.api.messages_to(GROUP_ID)) == 1


async def test_an_unknown_command_addressed_to_the_bot_is_answered_in_a_group(bot: Bot) -> None:
    reply = await bot.say(GROUP_ID, "/weather@press_digest_bot", user_id=USER_ID, chat_type="group")
    assert reply.text == "I don't know that command; /help lists them all."


async def test_a_member_cannot_use_the_buttons_in_a_group(bot: Bot) -> None:
    start = await bot.say(GROUP_ID, "/start", user_id=USER_ID, chat_type="group")
    answer = await bot.press(GROUP_ID, USER_ID, "v1:sub:customs", start.message_id)
    assert answer.text == "Only the group's administrators can do that."
    assert await bot.subscriptions(GROUP_ID) == []
    bot.api.set_chat_member_status(GROUP_ID, OTHER_USER_ID, "administrator")
    answer = await bot.press(GROUP_ID, OTHER_USER_ID, "v1:sub:customs", start.message_id)
    assert answer.text is not None and answer.text.startswith("Following Customs")
    assert len(await bot.subscriptions(GROUP_ID)) == 1


async def test_a_subscription_in_a_forum_topic_belongs_to_that_topic(bot: Bot) -> None:
    bot.api.set_chat_member_status(FORUM_ID, USER_ID, "administrator")
    forum = {"user_id": USER_ID, "chat_type": "supergroup", "is_forum": True}
    reply = await bot.say(FORUM_ID, "/subscribe customs", thread_id=77, **forum)
    assert reply.message_thread_id == 77
    await bot.say(FORUM_ID, "/subscribe typhoon", thread_id=88, **forum)
    assert sorted(s.thread_id for s in await bot.subscriptions(FORUM_ID)) == [77, 88]
    listed = await bot.say(FORUM_ID, "/list", thread_id=77, **forum)
    assert listed.message_thread_id == 77
    assert "Customs" in listed.text and "typhoon" not in listed.text.lower()
    # the digest of topic 77 goes to topic 77
    async with bot.sessions() as s:
        topic = (await s.exec(select(Topic).where(Topic.label.startswith("Customs")))).one()
    await bot.add_release("Customs seizes smuggled cigarettes", topic_query=topic.query)
    await bot.say(FORUM_ID, "/digest", thread_id=77, **forum)
    await bot.api.wait_for(
        lambda: any("cigarettes" in m.text for m in bot.api.messages_to(FORUM_ID, 77))
    )
    assert not any("cigarettes" in m.text for m in bot.api.messages_to(FORUM_ID, 88))


async def test_a_start_button_in_a_forum_topic_subscribes_that_topic(bot: Bot) -> None:
    bot.api.set_chat_member_status(FORUM_ID, USER_ID, "administrator")
    forum = {"user_id": USER_ID, "chat_type": "supergroup", "is_forum": True}
    start = await bot.say(FORUM_ID, "/start", thread_id=42, **forum)
    assert start.message_thread_id == 42
    answer = await bot.press(FORUM_ID, USER_ID, "v1:sub:customs", start.message_id)
    assert answer.text is not None and answer.text.startswith("Following Customs")
    assert [s.thread_id for s in await bot.subscriptions(FORUM_ID)] == [42]
