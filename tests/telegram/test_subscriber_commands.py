"""Every subscriber command through real updates (getUpdates), in a private chat."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from bot.models import Chat, MessageKind, OutboxMessage, Subscription, Topic
from bot.subscriptions import subscribe
from bot.telegram.app import SUBSCRIBER_COMMANDS
from tests.telegram.conftest import ADMIN_ID, USER_ID, Bot

COMMANDS = list(SUBSCRIBER_COMMANDS)


def button_data(reply_markup: dict[str, Any] | None) -> list[tuple[str, str]]:
    assert reply_markup is not None
    return [(b["text"], b["callback_data"]) for row in reply_markup["inline_keyboard"] for b in row]


async def test_start_greets_explains_and_offers_popular_topics(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/start")
    assert "Hello" in reply.text
    assert "/subscribe customs" in reply.text
    buttons = button_data(reply.reply_markup)
    assert ("Customs", "v1:sub:customs") in buttons
    assert all(len(data.encode()) <= 64 and data.startswith("v1:") for _, data in buttons)
    assert reply.link_preview_disabled


async def test_start_button_subscribes_on_tap(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/start")
    answer = await bot.press(USER_ID, USER_ID, "v1:sub:customs", reply.message_id)
    assert answer.text is not None and answer.text.startswith("Following Customs")
    confirmation = (await bot.api.wait_for_message(USER_ID, count=2))[1]
    assert "Following Customs" in confirmation.text
    assert [s.thread_id for s in await bot.subscriptions(USER_ID)] == [0]
    again = await bot.press(USER_ID, USER_ID, "v1:sub:customs", reply.message_id)
    assert again.text is not None and again.text.startswith("Already following Customs")
    assert len(await bot.subscriptions(USER_ID)) == 1


async def test_a_chinese_speaker_is_answered_in_chinese_from_the_first_message(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/start", language_code="zh-hant")
    assert "你好" in reply.text
    assert ("海關", "v1:sub:customs") in button_data(reply.reply_markup)
    chat = await bot.chat(USER_ID)
    assert chat is not None and chat.language == "zh"


async def test_a_new_chat_gets_the_default_timezone_time_and_a_next_digest(bot: Bot) -> None:
    await bot.say(USER_ID, "/start")
    chat = await bot.chat(USER_ID)
    assert chat is not None
    assert (chat.timezone, chat.digest_time.strftime("%H:%M")) == ("Asia/Hong_Kong", "08:00")
    assert chat.next_digest_at is not None


async def test_help_lists_every_command_with_an_example(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/help")
    for name in COMMANDS:
        assert f"/{name}" in reply.text, name
    assert "e.g. /subscribe customs" in reply.text
    assert "/broadcast" not in reply.text  # admin commands only for admins
    admin_help = await bot.say(ADMIN_ID, "/help")
    assert "/broadcast" in admin_help.text and "/addfeed" in admin_help.text


async def test_subscribe_says_what_it_will_match(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/subscribe customs")
    assert reply.text.startswith("Following Customs")
    assert "海關" in reply.text  # the catalogue's aliases
    assert "Nothing matched in the last 30 days" in reply.text
    again = await bot.say(USER_ID, "/sub customs")
    assert "already follow" in again.text
    assert len(await bot.subscriptions(USER_ID)) == 1


async def test_subscribe_shows_a_recent_example(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe typhoon")
    async with bot.sessions() as s:
        topic = (await s.exec(select(Topic))).one()
    await bot.add_release(
        "Typhoon signal No. 8 <issued>",
        link="https://www.info.gov.hk/gia/general/t8.htm",
        topic_query=topic.query,
    )
    reply = await bot.say(ADMIN_ID, "/subscribe typhoon")
    assert "Recent example: Typhoon signal No. 8 <issued>" in reply.text
    assert 'href="https://www.info.gov.hk/gia/general/t8.htm"' in reply.html


async def test_subscribe_explains_what_is_wrong_in_one_line(bot: Bot) -> None:
    cases = {
        "/subscribe": "Tell me what to follow, e.g. /subscribe customs",
        "/subscribe   ": "Tell me what to follow, e.g. /subscribe customs",
        "/subscribe " + "x" * 300: "That query is 300 characters long, at most 200",
        "/subscribe cus\u200ftoms": "without control or direction characters",
        "/subscribe cus\x07toms": "without control or direction characters",
    }
    for command, expected in cases.items():
        reply = await bot.say(USER_ID, command)
        assert expected in reply.text, (command, reply.text)
        assert "\n" not in reply.text
    assert await bot.subscriptions(USER_ID) == []


async def test_a_query_the_language_rejects_gets_its_reason(bot: Bot) -> None:
    reply = await bot.say(USER_ID, '/subscribe "unclosed')
    assert "\n" not in reply.text and reply.text
    assert await bot.subscriptions(USER_ID) == []


async def test_user_text_is_escaped_when_echoed(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/unsubscribe <b>nope</b> & <i>")
    assert reply.text.startswith("Nothing followed here matches <b>nope</b> & <i>;")
    assert "&lt;b&gt;nope&lt;/b&gt; &amp; &lt;i&gt;" in reply.html
    search = await bot.say(USER_ID, '/search <a href="x">y</a>')
    assert '<a href="x">y</a>' in search.text


async def test_the_51st_subscription_is_refused(bot: Bot) -> None:
    await bot.say(USER_ID, "/start")
    chat = await bot.chat(USER_ID)
    assert chat is not None
    for number in range(bot.settings.max_subscriptions):
        await subscribe(bot.sessions, chat, 0, f"word{number}", bot.settings.max_subscriptions)
    reply = await bot.say(USER_ID, "/subscribe customs")
    assert reply.text.startswith("This chat already follows 50 topics")
    assert len(await bot.subscriptions(USER_ID)) == 50


async def test_list_is_numbered_with_schedule_and_timezone(bot: Bot) -> None:
    empty = await bot.say(USER_ID, "/list")
    assert "Nothing is followed here yet" in empty.text
    await bot.say(USER_ID, "/subscribe customs")
    await bot.say(USER_ID, '/subscribe "national security"')
    reply = await bot.say(USER_ID, "/list")
    assert "1. Customs" in reply.text
    assert "2. National security" in reply.text
    assert "every day at 08:00 (Asia/Hong_Kong)" in reply.text
    assert "Next digest:" in reply.text


async def test_unsubscribe_by_number_and_by_query(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    await bot.say(USER_ID, "/subscribe lighthouse keeper")
    reply = await bot.say(USER_ID, "/unsubscribe 2")
    assert reply.text.lower().startswith("stopped following lighthouse keeper")
    reply = await bot.say(USER_ID, "/unsub customs")
    assert reply.text.startswith("Stopped following Customs")
    assert await bot.subscriptions(USER_ID) == []
    missing = await bot.say(USER_ID, "/unsubscribe 7")
    assert missing.text.startswith("Nothing followed here matches 7")


async def test_unsubscribe_without_argument_offers_one_button_each(bot: Bot) -> None:
    nothing = await bot.say(USER_ID, "/unsubscribe")
    assert "Nothing is followed here yet" in nothing.text
    await bot.say(USER_ID, "/subscribe customs")
    await bot.say(USER_ID, "/subscribe typhoon")
    reply = await bot.say(USER_ID, "/unsubscribe")
    buttons = button_data(reply.reply_markup)
    assert len(buttons) == 2
    label, data = buttons[0]
    assert "Customs" in label and data.startswith("v1:unsub:")
    answer = await bot.press(USER_ID, USER_ID, data, reply.message_id)
    assert answer.text is not None and answer.text.startswith("Stopped following Customs")
    assert len(await bot.subscriptions(USER_ID)) == 1
    await bot.api.wait_for(lambda: len(bot.api.edited) == 1)
    edited = bot.api.edited[-1]
    assert len(button_data(edited.reply_markup)) == 1
    stale = await bot.press(USER_ID, USER_ID, data, reply.message_id)
    assert stale.text == "This button is out of date; send /list to see what is current."
    assert len(await bot.subscriptions(USER_ID)) == 1


async def test_buttons_of_unknown_versions_get_a_polite_answer(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/start")
    for data in ("v0:sub:customs", "v1:sub:no-such-topic", "garbage", "v1:unsub:abc"):
        answer = await bot.press(USER_ID, USER_ID, data, reply.message_id)
        assert answer.text == "This button is out of date; send /list to see what is current."
    assert await bot.subscriptions(USER_ID) == []


async def test_time_accepts_the_usual_spellings(bot: Bot) -> None:
    for typed, expected in (
        ("7:30", "07:30"),
        ("0915", "09:15"),
        ("8", "08:00"),
        ("7pm", "19:00"),
        ("7.30", "07:30"),
        ("0730", "07:30"),
        ("7:45 PM", "19:45"),
        ("12am", "00:00"),
    ):
        reply = await bot.say(USER_ID, f"/time {typed}")
        assert reply.text.startswith(f"Digest every day at {expected} (Asia/Hong_Kong)."), typed
        chat = await bot.chat(USER_ID)
        assert chat is not None and chat.digest_time.strftime("%H:%M") == expected


async def test_time_replies_in_one_line_that_names_the_setting_once(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/time 07:30")
    assert "\n" not in reply.text
    assert reply.text.count("07:30") == 2  # the daily time, and the next digest's
    assert reply.text.count("Asia/Hong_Kong") == 1
    assert reply.text.startswith("Digest every day at 07:30 (Asia/Hong_Kong). Next digest: ")


async def test_time_rejects_what_is_not_a_time(bot: Bot) -> None:
    await bot.say(USER_ID, "/time 06:45")
    bad = await bot.say(USER_ID, "/time 25:99")
    assert bad.text == "25:99 is not a time; use HH:MM, e.g. /time 08:00 or /time 7pm"
    assert (await bot.say(USER_ID, "/time 13pm")).text.startswith("13pm is not a time")
    assert (await bot.say(USER_ID, "/time ²")).text.startswith("² is not a time")
    assert (await bot.say(USER_ID, "/time")).text == "Send a time, e.g. /time 08:00"
    chat = await bot.chat(USER_ID)
    assert chat is not None and chat.digest_time.strftime("%H:%M") == "06:45"


async def test_timezone_is_an_iana_name_found_case_insensitively(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/timezone europe/london")
    assert reply.text.startswith("Digest every day at 08:00 (Europe/London).")
    bad = await bot.say(USER_ID, "/timezone Mars/Olympus")
    assert bad.text == (
        "Mars/Olympus is not a timezone I know; send a city or AREA/CITY, "
        "e.g. /timezone London or /timezone Asia/Hong_Kong"
    )
    chat = await bot.chat(USER_ID)
    assert chat is not None and chat.timezone == "Europe/London"


async def test_timezone_finds_a_city_in_english_or_chinese(bot: Bot) -> None:
    for typed, zone in (
        ("London", "Europe/London"),
        ("hong kong", "Asia/Hong_Kong"),
        ("NEW YORK", "America/New_York"),
        ("香港", "Asia/Hong_Kong"),
        ("倫敦", "Europe/London"),
    ):
        reply = await bot.say(USER_ID, f"/timezone {typed}")
        assert f"({zone})" in reply.text, typed
        chat = await bot.chat(USER_ID)
        assert chat is not None and chat.timezone == zone


async def test_timezone_offers_the_closest_zones_as_buttons(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/timezone Londn")
    assert reply.text == "Londn could be one of these timezones; tap yours:"
    buttons = button_data(reply.reply_markup)
    assert ("Europe/London", "v1:tz:Europe/London") in buttons
    chat = await bot.chat(USER_ID)
    assert chat is not None and chat.timezone == "Asia/Hong_Kong"  # nothing changed yet
    answer = await bot.press(USER_ID, USER_ID, "v1:tz:Europe/London", reply.message_id)
    assert answer.text == "Timezone: Europe/London"
    chat = await bot.chat(USER_ID)
    assert chat is not None and chat.timezone == "Europe/London"
    forged = await bot.press(USER_ID, USER_ID, "v1:tz:Mars/Olympus", reply.message_id)
    assert forged.text == "This button is out of date; send /list to see what is current."


async def test_frequency_daily_weekly_instant(bot: Bot) -> None:
    weekly = await bot.say(USER_ID, "/frequency weekly")
    assert weekly.text.startswith("Digest every ")
    instant = await bot.say(USER_ID, "/frequency instant")
    assert instant.text == "Each match is sent as it arrives."  # no timezone: it plays no part
    chat = await bot.chat(USER_ID)
    assert chat is not None and chat.frequency == "instant" and chat.next_digest_at is None
    bad = await bot.say(USER_ID, "/frequency hourly")
    assert bad.text.startswith("hourly is not a rhythm I know")


async def test_pause_and_resume(bot: Bot) -> None:
    assert (await bot.say(USER_ID, "/pause")).text.startswith("Paused")
    assert (await bot.say(USER_ID, "/pause")).text.startswith("Deliveries are already paused")
    chat = await bot.chat(USER_ID)
    assert chat is not None and chat.paused
    assert "paused" in (await bot.say(USER_ID, "/list")).text
    assert (await bot.say(USER_ID, "/resume")).text.startswith("Resumed")
    assert (await bot.say(USER_ID, "/resume")).text.startswith("Deliveries are not paused")
    chat = await bot.chat(USER_ID)
    assert chat is not None and not chat.paused


async def test_lang_switches_the_language(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/lang zh")
    assert reply.text == "我會在這裏使用繁體中文。"
    assert "指令" in (await bot.say(USER_ID, "/help")).text
    assert (await bot.say(USER_ID, "/time 99")).text.startswith("99 不是有效的時間")
    assert (await bot.say(USER_ID, "/lang klingon")).text == "請選擇 en 或 zh，例如 /lang en"
    assert (await bot.say(USER_ID, "/lang en")).text == "I will speak English here."


async def test_search_lists_the_newest_matching_releases(bot: Bot) -> None:
    await bot.add_release(
        "Customs seizes suspected cocaine", link="https://www.info.gov.hk/gia/c1.htm"
    )
    await bot.add_release(
        "Weather report for the weekend", link="https://www.info.gov.hk/gia/w1.htm"
    )
    reply = await bot.say(USER_ID, "/search customs")
    assert "1. Customs seizes suspected cocaine" in reply.text
    assert "Weather" not in reply.text
    assert 'href="https://www.info.gov.hk/gia/c1.htm"' in reply.html
    none = await bot.say(USER_ID, "/search volcano")
    assert none.text.startswith("No stored release matches volcano")
    assert (
        await bot.say(USER_ID, "/search")
    ).text == "Tell me what to look for, e.g. /search typhoon"


async def test_digest_with_nothing_new(bot: Bot) -> None:
    first = await bot.say(USER_ID, "/digest")
    assert first.text.startswith("Nothing new yet")
    await bot.say(USER_ID, "/subscribe customs")
    reply = await bot.say(USER_ID, "/digest")
    assert reply.text.startswith("Nothing new since ")


async def test_digest_now_sends_what_matched(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    async with bot.sessions() as s:
        topic = (await s.exec(select(Topic))).one()
    await bot.add_release("Customs seizes smuggled cigarettes", topic_query=topic.query)
    reply = await bot.say(USER_ID, "/digest")  # the answer is the digest itself
    assert reply.text.startswith("📰 Press digest")
    assert "1 new release\n" in reply.text
    assert "Customs seizes smuggled cigarettes" in reply.text
    await bot.settle(USER_ID)
    assert not any("on its way" in m.text for m in bot.api.messages_to(USER_ID))


async def test_stop_forgets_the_chat_and_everything_about_it(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    chat = await bot.chat(USER_ID)
    assert chat is not None
    async with bot.sessions() as s:
        s.add(
            OutboxMessage(
                chat_id=chat.id,  # type: ignore[arg-type]
                text="queued",
                kind=MessageKind.notice,
                not_before=chat.created_at.replace(year=2100),
            )
        )
        await s.commit()
    assert (await bot.stop(USER_ID)).startswith("Done: I forgot this chat")
    async with bot.sessions() as s:
        assert (await s.exec(select(Chat))).all() == []
        assert (await s.exec(select(Subscription))).all() == []
        assert (await s.exec(select(OutboxMessage))).all() == []


async def test_unknown_commands_and_plain_text_get_one_line(bot: Bot) -> None:
    unknown = await bot.say(USER_ID, "/frobnicate now")
    assert unknown.text == "I don't know that command; /help lists them all."
    plain = await bot.say(USER_ID, "hello there")
    assert plain.text == "I understand commands; try /subscribe customs or /help."


async def test_commands_are_registered_in_english_and_chinese(bot: Bot) -> None:
    by_language = {
        language: commands
        for (scope, language), commands in bot.api.commands.items()
        if scope == '{"type": "default"}'
    }
    english, chinese = by_language[""], by_language["zh"]
    assert [c["command"] for c in english] == COMMANDS
    assert [c["command"] for c in chinese] == COMMANDS
    assert english[0]["description"] != chinese[0]["description"]


async def test_a_failure_is_answered_not_silent(bot: Bot, monkeypatch) -> None:
    import bot.telegram.commands.topics as handlers

    async def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(handlers, "list_followed", broken)
    reply = await bot.say(USER_ID, "/list")
    assert reply.text == "Sorry, something went wrong on my side. Please try again in a minute."
