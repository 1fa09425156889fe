"""Replies that could outgrow one Telegram message, and odd numbers typed as arguments."""

from __future__ import annotations

from bot.subscriptions import register_chat, subscribe
from tests.telegram.conftest import ADMIN_ID, USER_ID, Bot


async def replies_to(bot: Bot, command: str) -> list[str]:
    """Every message the bot sends for `command` (updates are handled one after another)."""
    before = len(bot.api.messages_to(USER_ID))
    bot.api.push_message(USER_ID, command)
    bot.api.push_message(USER_ID, "/help")
    await bot.api.wait_for(
        lambda: any("/subscribe QUERY" in m.text for m in bot.api.messages_to(USER_ID)[before:])
    )
    return [m.text for m in bot.api.messages_to(USER_ID)[before:-1]]


async def test_list_of_fifty_long_subscriptions_is_sent_in_parts(bot: Bot) -> None:
    chat = await register_chat(bot.sessions, USER_ID, "private", None, "en", bot.settings)
    for number in range(50):
        words = " ".join(f"w{number:02d}{chr(97 + i) * 14}" for i in range(10))
        await subscribe(bot.sessions, chat, 0, words, 50)
    replies = await replies_to(bot, "/list")
    text = "\n".join(replies)
    assert "Topics followed here (50)" in text
    assert all(f"{n}. w{n - 1:02d}aaa" in text for n in range(1, 51))
    assert all(len(reply) <= 4096 for reply in replies)


async def test_search_with_long_titles_is_sent_in_parts(bot: Bot) -> None:
    for number in range(10):
        title = f"Customs report {number} " + "lorem ipsum " * 80
        await bot.add_release(
            title.strip(), link=f"https://www.info.gov.hk/gia/general/c{number}.htm"
        )
    replies = await replies_to(bot, "/search customs")
    text = "\n".join(replies)
    assert "Newest releases for customs" in text
    assert all(f"Customs report {n}" in text for n in range(10))


async def test_unsubscribe_with_a_superscript_digit_says_not_found(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    reply = await bot.say(USER_ID, "/unsubscribe ²")
    assert "went wrong" not in reply.text
    assert len(await bot.subscriptions(USER_ID)) == 1


async def test_unsubscribe_button_of_a_long_topic_answers_and_updates_the_buttons(
    bot: Bot,
) -> None:
    chat = await register_chat(bot.sessions, USER_ID, "private", None, "en", bot.settings)
    long_query = " ".join(f"w{chr(97 + i) * 17}" for i in range(10))
    await subscribe(bot.sessions, chat, 0, long_query, 50)
    await subscribe(bot.sessions, chat, 0, "customs", 50)
    choose = await bot.say(USER_ID, "/unsubscribe")
    data = choose.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    answer = await bot.press(USER_ID, USER_ID, data, choose.message_id)
    assert answer.text is not None and answer.text.startswith("Stopped following waaa")
    assert len(await bot.subscriptions(USER_ID)) == 1


async def test_removefeed_with_a_superscript_digit_says_there_is_no_such_feed(bot: Bot) -> None:
    reply = await bot.say(ADMIN_ID, "/removefeed ²")
    assert reply.text.startswith("There is no feed ²")
