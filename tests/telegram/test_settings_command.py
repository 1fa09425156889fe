"""/settings and the menu button: with PUBLIC_URL, the Mini App opens from the private chat."""

from __future__ import annotations

import asyncio

import pytest

from bot.db import SessionFactory
from bot.subscriptions import get_chat
from tests.doubles.telegram_api import BotAPIDouble
from tests.telegram.conftest import GROUP_ID, USER_ID, Bot, make_settings, start_bot

PUBLIC_URL = "https://digest.example.org"


@pytest.fixture
async def bot_with_app(api: BotAPIDouble, sessions: SessionFactory, sqlite_url: str) -> Bot:  # type: ignore[misc]
    settings = make_settings(api, sqlite_url, public_url=PUBLIC_URL)
    stop = asyncio.Event()
    task = await start_bot(settings, sessions, stop)
    yield Bot(api, sessions, settings)  # type: ignore[misc]
    stop.set()
    await asyncio.wait_for(task, 15)


async def test_settings_opens_the_mini_app_in_a_private_chat(bot_with_app: Bot) -> None:
    reply = await bot_with_app.say(USER_ID, "/settings")
    assert reply.reply_markup is not None
    [[button]] = reply.reply_markup["inline_keyboard"]
    assert button["web_app"] == {"url": f"{PUBLIC_URL}/app"}
    assert "one screen" in reply.text


async def test_settings_answers_in_chinese_for_a_chinese_chat(bot_with_app: Bot) -> None:
    reply = await bot_with_app.say(USER_ID, "/settings", language_code="zh-hant")
    assert "同一畫面" in reply.text
    assert reply.reply_markup["inline_keyboard"][0][0]["text"] == "⚙️ 開啟設定"  # type: ignore[index]


async def test_the_default_menu_button_opens_the_mini_app(bot_with_app: Bot) -> None:
    button = bot_with_app.api.menu_buttons[None]
    assert button["type"] == "web_app"
    assert button["web_app"] == {"url": f"{PUBLIC_URL}/app"}
    assert "Settings" in button["text"] and "設定" in button["text"]


async def test_in_a_group_settings_points_to_the_admins_commands(bot_with_app: Bot) -> None:
    reply = await bot_with_app.say(
        GROUP_ID, "/settings", user_id=USER_ID, chat_type="supergroup", chat_title="Newsroom"
    )
    assert reply.reply_markup is None
    assert "administrators" in reply.text and "/time 08:00" in reply.text


async def test_without_public_url_settings_lists_the_commands(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/settings")
    assert reply.reply_markup is None
    assert "/time 08:00" in reply.text and "/list" in reply.text
    assert bot.api.menu_buttons == {}  # the menu button stays Telegram's default


async def test_frequency_weekly_with_a_day_picks_that_day(bot: Bot) -> None:
    reply = await bot.say(USER_ID, "/frequency weekly friday")
    assert "Friday" in reply.text
    chat = await get_chat(bot.sessions, USER_ID)
    assert chat is not None and (chat.frequency, chat.digest_weekday) == ("weekly", 4)
    reply = await bot.say(USER_ID, "/frequency weekly someday")
    assert "not a weekday" in reply.text
