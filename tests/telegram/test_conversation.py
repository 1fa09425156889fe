"""The conversation, complete: Chinese everywhere, weekdays, /digest, /stop asks, /whoami, the
admin menu, strict buttons and numbers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from bot.db import SessionFactory
from bot.models import Subscription, Topic
from tests.doubles.feed_server import FeedServer
from tests.doubles.telegram_api import BotAPIDouble
from tests.telegram.conftest import (
    ADMIN_ID,
    FORUM_ID,
    GROUP_ID,
    USER_ID,
    Bot,
    make_settings,
    start_bot,
)


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


STALE = "This button is out of date; send /list to see what is current."
ZH = {"language_code": "zh-hant"}


# --- Chinese chats hear Chinese -----------------------------------------------------------


def _has_latin_words(text: str) -> bool:
    """Latin words other than commands, examples and placeholders a Chinese text may quote."""
    import re

    allowed = {"customs", "or", "excise", "national", "security", "https", "example", "org"}
    allowed |= {"rss", "xml", "utc", "ok", "http", "atom"}
    words = re.findall(r"(?<![/\w.#@])[A-Za-z]{2,}", text)
    return any(word.casefold() not in allowed for word in words)


def _explanation(reply: str, typed: str) -> str:
    """A reply without what the person typed (echoed back) and the example after 例如."""
    head = reply.split("例如")[0]
    for word in sorted(typed.split(), key=len, reverse=True):
        head = head.replace(word.strip('-"*'), "")
    return head


QUERY_ERRORS = [
    # (what a Chinese chat types, a word of the specific reason it must read)
    ('/subscribe "unclosed', "引號"),
    ("/subscribe -only", "排除"),
    ("/subscribe OR", "OR 在查詢開頭"),
    ("/subscribe customs OR", "OR 在查詢末尾"),
    ("/subscribe customs OR OR excise", "連續兩個 OR"),
    ("/subscribe !!!", "標點符號"),
    ("/subscribe sm*ggle", "字詞末尾"),
    ("/subscribe a*", "字首太短"),
    ("/subscribe ivory -ivory", "同時是要找及要排除"),
    ("/subscribe " + "x" * 201, "201 個字元"),
    ("/subscribe " + " ".join(f"w{i}" for i in range(21)), "字詞太多（21 個，上限 20 個）"),
    ('/search "unclosed', "引號"),
    ("/search -only", "排除"),
]


async def test_every_query_error_in_a_chinese_chat_is_its_own_reason_in_chinese(
    bot: Bot,
) -> None:
    for typed, reason in QUERY_ERRORS:
        reply = await bot.say(USER_ID, typed, **ZH)
        assert reason in reply.text, (typed, reply.text)
        argument = typed.split(" ", 1)[1]
        assert not _has_latin_words(_explanation(reply.text, argument)), (typed, reply.text)
    assert await bot.subscriptions(USER_ID) == []


async def test_the_same_query_errors_in_an_english_chat_are_english(bot: Bot) -> None:
    reply = await bot.say(USER_ID, '/subscribe "unclosed')
    assert reply.text == 'Unbalanced quote in "unclosed: close the quote, e.g. "unclosed"'
    reply = await bot.say(USER_ID, "/search customs OR")
    assert reply.text.startswith("OR at the end of the query")


async def test_addfeed_errors_in_a_chinese_chat_are_chinese(
    bot: Bot, feed_server: FeedServer
) -> None:
    for typed, reason in (
        ("/addfeed not a url", "只可以新增 http:// 或 https://"),
        ("/addfeed https://exa mple.org/x.xml", "不是有效的網址"),
        ("/addfeed https://example.org/" + "x" * 2100, "網址超過"),
    ):
        reply = await bot.say(ADMIN_ID, typed, **ZH)
        assert reply.text.startswith("未有新增：") and reason in reply.text, reply.text
        assert not _has_latin_words(_explanation(reply.text, typed.split(" ", 1)[1])), reply.text
    broken = feed_server.add_status("/gone.xml", 404)
    failed = await bot.say(ADMIN_ID, f"/addfeed {broken}", **ZH)
    assert failed.text == f"已新增 {broken}，但首次讀取失敗：伺服器回應 HTTP 404 錯誤"
    again = await bot.say(ADMIN_ID, f"/addfeed {broken}", **ZH)
    assert again.text == "未有新增：此資訊來源已在列表中；請看 /feeds"
    listing = await bot.say(ADMIN_ID, "/feeds", **ZH)
    assert "伺服器回應 HTTP 404 錯誤" in listing.text and "Not Found" not in listing.text
    assert not _has_latin_words(listing.text.replace(broken, ""))
    stats = await bot.say(ADMIN_ID, "/stats", **ZH)
    assert "連續失敗 1 次：伺服器回應 HTTP 404 錯誤" in stats.text
    assert not _has_latin_words(stats.text.replace(broken, ""))


async def test_feed_failures_in_an_english_chat_keep_the_detail(
    bot: Bot, feed_server: FeedServer
) -> None:
    broken = feed_server.add_status("/gone.xml", 404)
    failed = await bot.say(ADMIN_ID, f"/addfeed {broken}")
    assert failed.text == (
        f"Added {broken}, but the first poll failed: the server answered HTTP 404 (Not Found)"
    )
    slow = feed_server.add_html_page("/page.html")
    failed = await bot.say(ADMIN_ID, f"/addfeed {slow}")
    assert failed.text.startswith(f"Added {slow}, but the first poll failed: not a feed (")


async def test_a_broadcast_refused_for_its_html_is_explained_in_chinese(bot: Bot) -> None:
    reply = await bot.say(ADMIN_ID, "/broadcast Fish & chips", **ZH)
    assert reply.text == "未有排隊發送：第 6 個字元是單獨的「&」：要顯示 & 請寫 &amp;"
    reply = await bot.say(ADMIN_ID, "/broadcast <p>Maintenance</p>", **ZH)
    assert reply.text.startswith("未有排隊發送：Telegram 不支援 <p> 標籤（第 1 個字元）")
    # the tags it may use are quoted as HTML; the rest is Chinese
    assert not _has_latin_words(reply.text.split("：請用")[0].replace("Telegram", ""))


async def test_stats_in_a_chinese_chat_is_chinese(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    reply = await bot.say(ADMIN_ID, "/stats", **ZH)
    assert reply.text.startswith("統計\n聊天室：2（使用中 2，暫停 0）\n關注：1 個")
    for english in ("chats:", "subscriptions:", "releases:", "messages:", "queued"):
        assert english not in reply.text
    assert not _has_latin_words(reply.text)


async def test_english_plurals_are_right(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    async with bot.sessions() as s:
        topic = (await s.exec(select(Topic))).one()
    await bot.add_release("Customs seizes smuggled cigarettes", topic_query=topic.query)
    digest = await bot.say(USER_ID, "/digest")
    assert "1 new release\n" in digest.text and "1 new releases" not in digest.text


# --- /frequency weekly DAY ----------------------------------------------------------------


async def test_frequency_weekly_takes_the_day_in_english_or_chinese(bot: Bot) -> None:
    for typed, weekday, shown in (
        ("monday", 0, "Monday"),
        ("一", 0, "Monday"),
        ("星期三", 2, "Wednesday"),
        ("日", 6, "Sunday"),
        ("Fri", 4, "Friday"),
    ):
        reply = await bot.say(USER_ID, f"/frequency weekly {typed}")
        assert reply.text.startswith(f"Digest every {shown} at 08:00"), typed
        chat = await bot.chat(USER_ID)
        assert chat is not None and (chat.frequency, chat.digest_weekday) == ("weekly", weekday)


# --- /digest in a forum topic -------------------------------------------------------------


async def test_digest_in_a_forum_topic_sends_that_topics_digest_only(bot: Bot) -> None:
    bot.api.set_chat_member_status(FORUM_ID, USER_ID, "administrator")
    forum = {"user_id": USER_ID, "chat_type": "supergroup", "is_forum": True}
    await bot.say(FORUM_ID, "/subscribe customs", thread_id=11, **forum)
    await bot.say(FORUM_ID, "/subscribe typhoon", thread_id=22, **forum)
    async with bot.sessions() as s:
        by_thread = {
            sub.thread_id: topic
            for sub, topic in (
                await s.exec(
                    select(Subscription, Topic).join(Topic, Topic.id == Subscription.topic_id)  # type: ignore[arg-type]
                )
            ).all()
        }
    customs, typhoon = by_thread[11], by_thread[22]
    await bot.add_release("Customs seizes smuggled cigarettes", topic_query=customs.query)
    await bot.add_release("Typhoon signal No. 8 issued", topic_query=typhoon.query)

    reply = await bot.say(FORUM_ID, "/digest", thread_id=11, **forum)

    assert reply.message_thread_id == 11
    assert "Customs seizes smuggled cigarettes" in reply.text
    await bot.say(FORUM_ID, "/help", **forum)  # every update so far is handled
    assert not any("Typhoon" in m.text for m in bot.api.messages_to(FORUM_ID))
    # the other topic loses nothing: its own /digest still has its release
    other = await bot.say(FORUM_ID, "/digest", thread_id=22, **forum)
    assert other.message_thread_id == 22 and "Typhoon signal No. 8 issued" in other.text


# --- /stop asks first ---------------------------------------------------------------------


async def test_stop_asks_before_it_forgets_and_cancel_keeps_everything(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    question = await bot.say(USER_ID, "/stop")
    assert question.text.startswith("Forget this chat?")
    buttons = [
        (b["text"], b["callback_data"])
        for row in question.reply_markup["inline_keyboard"]
        for b in row
    ]  # type: ignore[index]
    assert [data for _, data in buttons] == ["v1:stop:ok", "v1:stop:no"]
    assert len(await bot.subscriptions(USER_ID)) == 1  # nothing deleted yet

    answer = await bot.press(USER_ID, USER_ID, "v1:stop:no", question.message_id)
    assert answer.text == "Kept: nothing was deleted."
    kept = "Kept: nothing was deleted."
    await bot.api.wait_for(lambda: any(m.text == kept for m in bot.api.messages_to(USER_ID)))
    assert len(await bot.subscriptions(USER_ID)) == 1
    assert await bot.chat(USER_ID) is not None

    assert (await bot.stop(USER_ID)).startswith("Done: I forgot this chat")
    assert await bot.chat(USER_ID) is None


async def test_in_a_group_only_administrators_may_confirm_stop(bot: Bot) -> None:
    group_id = -100_777
    bot.api.set_chat_member_status(group_id, USER_ID, "administrator")
    admin = {"user_id": USER_ID, "chat_type": "supergroup"}
    await bot.say(group_id, "/subscribe customs", **admin)
    question = await bot.say(group_id, "/stop", **admin)
    member_id = USER_ID + 77
    answer = await bot.press(group_id, member_id, "v1:stop:ok", question.message_id)
    assert answer.text == "Only the group's administrators can do that."
    assert len(await bot.subscriptions(group_id)) == 1


# --- /whoami ------------------------------------------------------------------------------


async def test_whoami_shows_the_users_and_the_chats_ids_in_both_languages(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/whoami")
    assert reply.text == f"Your Telegram id: {USER_ID}\nThis chat's id: {USER_ID}"
    group_id = -100_555
    zh = await bot.say(group_id, "/whoami", user_id=USER_ID, chat_type="supergroup", **ZH)
    assert zh.text == f"你的 Telegram 編號：{USER_ID}\n此聊天室的編號：{group_id}"
    assert await bot.chat(group_id) is None  # read-only: nothing stored


async def test_whoami_is_in_the_command_menu_in_both_languages(bot: Bot) -> None:
    default = json.dumps({"type": "default"})
    for language in ("", "zh"):
        names = [c["command"] for c in bot.api.commands[(default, language)]]
        assert "whoami" in names


# --- the admin menu -----------------------------------------------------------------------


async def test_admin_commands_are_in_the_menu_of_admins_only(bot: Bot) -> None:
    admin_scope = json.dumps({"type": "chat", "chat_id": ADMIN_ID}, sort_keys=True)
    default = json.dumps({"type": "default"})
    for language in ("", "zh"):
        everyone = [c["command"] for c in bot.api.commands[(default, language)]]
        admins = [c["command"] for c in bot.api.commands[(admin_scope, language)]]
        assert "broadcast" not in everyone and "stats" not in everyone
        assert admins[: len(everyone)] == everyone
        assert admins[len(everyone) :] == ["broadcast", "stats", "feeds", "addfeed", "removefeed"]
    chinese = bot.api.commands[(admin_scope, "zh")]
    assert next(c for c in chinese if c["command"] == "stats")["description"].startswith("管理員")


# --- strict buttons and numbers -----------------------------------------------------------


async def test_buttons_with_odd_numbers_are_out_of_date_not_errors(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    reply = await bot.say(USER_ID, "/unsubscribe")
    for data in (
        "v1:unsub:²",
        "v1:unsub:99999999999999999999999",
        "v1:unsub:1²",
        "v1:unsub:1\n",
        "v1:bc:ok:²",
        "v1:bc:ok:99999999999999999999999",
        "v1:bc:no:٣",
        "v1:stop:maybe",
    ):
        answer = await bot.press(USER_ID, ADMIN_ID, data, reply.message_id)
        assert answer.text == STALE, data
    assert len(await bot.subscriptions(USER_ID)) == 1
    assert not any("went wrong" in m.text for m in bot.api.messages_to(USER_ID))


async def test_odd_numbers_in_commands_get_a_polite_line(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    reply = await bot.say(USER_ID, "/unsub ²")
    assert reply.text.startswith("Nothing followed here matches ²")
    huge = await bot.say(USER_ID, "/unsub 99999999999999999999999")
    assert huge.text.startswith("Nothing followed here matches 99999999999999999999999")
    async with bot.sessions() as s:
        assert len((await s.exec(select(Subscription))).all()) == 1
    feed = await bot.say(ADMIN_ID, "/removefeed 99999999999999999999999")
    assert feed.text.startswith("There is no feed 99999999999999999999999")
    assert (await bot.say(ADMIN_ID, "/removefeed ²")).text.startswith("There is no feed ²")


# --- Manage under every digest ------------------------------------------------------------


async def test_every_digest_ends_with_a_manage_button_that_shows_the_topics(bot: Bot) -> None:
    await bot.say(USER_ID, "/subscribe customs")
    async with bot.sessions() as s:
        topic = (await s.exec(select(Topic))).one()
    await bot.add_release("Customs seizes smuggled cigarettes", topic_query=topic.query)
    digest = await bot.say(USER_ID, "/digest")
    assert digest.reply_markup == {
        "inline_keyboard": [[{"text": "⚙️ Manage topics", "callback_data": "v1:manage"}]]
    }
    before = len(bot.api.messages_to(USER_ID))
    await bot.press(USER_ID, USER_ID, "v1:manage", digest.message_id)
    shown = (await bot.api.wait_for_message(USER_ID, count=before + 1))[before]
    assert shown.text.startswith("Topics followed here (1)\n1. Customs")


async def test_the_manage_button_opens_the_mini_app_in_one_tap_when_there_is_one(
    api: BotAPIDouble, sessions: SessionFactory, sqlite_url: str
) -> None:
    settings = make_settings(api, sqlite_url, public_url="https://digest.example.org")
    stop = asyncio.Event()
    task = await start_bot(settings, sessions, stop)
    try:
        bot = Bot(api, sessions, settings)
        await bot.say(USER_ID, "/subscribe customs", language_code="zh-hant")
        api.set_chat_member_status(GROUP_ID, USER_ID, "administrator")
        await bot.say(GROUP_ID, "/subscribe customs", user_id=USER_ID, chat_type="supergroup")
        async with sessions() as s:
            topic = (await s.exec(select(Topic))).one()
        await bot.add_release("Customs seizes smuggled cigarettes", topic_query=topic.query)
        # a private chat: the button is the Mini App itself, no message in between
        digest = await bot.say(USER_ID, "/digest")
        [[button]] = digest.reply_markup["inline_keyboard"]  # type: ignore[index]
        assert button == {
            "text": "⚙️ 管理主題",
            "web_app": {"url": "https://digest.example.org/app"},
        }
        # a group: Telegram refuses web_app buttons there; the button lists the group's topics
        group = await bot.say(GROUP_ID, "/digest", user_id=USER_ID, chat_type="supergroup")
        [[button]] = group.reply_markup["inline_keyboard"]  # type: ignore[index]
        assert button == {"text": "⚙️ Manage topics", "callback_data": "v1:manage"}
        before = len(api.messages_to(GROUP_ID))
        await bot.press(GROUP_ID, USER_ID, "v1:manage", group.message_id)
        shown = (await api.wait_for_message(GROUP_ID, count=before + 1))[before]
        assert shown.text.startswith("Topics followed here (1)\n1. Customs")
        # an old digest's callback button still opens the app, with one more tap
        before = len(api.messages_to(USER_ID))
        await bot.press(USER_ID, USER_ID, "v1:manage", digest.message_id)
        opened = (await api.wait_for_message(USER_ID, count=before + 1))[before]
        [[web_app]] = opened.reply_markup["inline_keyboard"]  # type: ignore[index]
        assert web_app["web_app"]["url"] == "https://digest.example.org/app"
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


# what a Chinese text may quote in Latin letters: commands' arguments, zone names, the product
QUOTED = {"daily", "weekly", "instant", "monday", "sunday", "en", "zh", "hh", "mm", "pm"}
QUOTED |= {"telegram", "asia", "hong", "kong", "europe", "london", "html", "id"}
QUOTED |= {"customs", "seizure", "or", "excise", "national", "security", "https"}


def _latin_words(text: str) -> list[str]:
    """Latin words in `text` outside its examples (each line's part after 例如) and QUOTED."""
    import re

    found = []
    for line in text.splitlines():
        for word in re.findall(r"(?<![/\w.#@])[A-Za-z]{2,}", line.split("例如")[0]):
            if word.casefold() not in QUOTED:
                found.append(word)
    return found


async def test_every_command_in_a_chinese_chat_answers_in_chinese(bot: Bot) -> None:
    said = [
        "/start", "/help", "/subscribe customs", "/list", "/time 09:00", "/time 25:00",
        "/timezone London", "/timezone Springfield", "/frequency weekly monday",
        "/frequency weekly xday", "/frequency hourly", "/frequency instant", "/frequency daily",
        "/pause", "/pause", "/resume", "/resume", "/search zzzz", "/lang fr", "/lang zh",
        "/whoami", "/settings", "/unsubscribe", "/unsubscribe zzzz", "/digest", "/foo", "hello",
        "/stop",
    ]  # fmt: skip
    for text in said:
        reply = await bot.say(USER_ID, text, **ZH)
        shown = reply.text.replace("Customs / 海關", "")  # the topic's name, in both languages
        shown = shown.split("也會配對：")[0]  # the names it matches, as the catalogue has them
        for typed in text.split()[1:]:
            shown = shown.replace(typed, "")
        assert _latin_words(shown) == [], (text, reply.text)
    for text in ("/stats", "/feeds", "/addfeed", "/removefeed 3", "/broadcast", "/help"):
        reply = await bot.say(ADMIN_ID, text, **ZH)
        assert _latin_words(reply.text) == [], (text, reply.text)
