"""The Bot API double treats Mini App buttons as Telegram does: https only, private chats only."""

from __future__ import annotations

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, MenuButtonWebApp, WebAppInfo
from telegram.error import BadRequest

from tests.doubles.telegram_api import BotAPIDouble

USER_ID = 5001
GROUP_ID = -100_200_300


def _markup(url: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("open", web_app=WebAppInfo(url))]])


async def test_web_app_buttons_must_be_https_and_in_a_private_chat() -> None:
    async with BotAPIDouble() as api, api.ptb_bot() as tg:
        api.push_message(USER_ID, "hi")  # the user wrote first: the bot may write to them
        api.push_message(GROUP_ID, "hi", user_id=USER_ID, chat_type="supergroup")
        with pytest.raises(BadRequest, match=r"(?i)only https links are allowed"):
            await tg.send_message(USER_ID, "x", reply_markup=_markup("http://x.example.org/app"))
        with pytest.raises(BadRequest, match=r"(?i)button_type_invalid"):
            await tg.send_message(GROUP_ID, "x", reply_markup=_markup("https://x.example.org/app"))
        sent = await tg.send_message(USER_ID, "x", reply_markup=_markup("https://x.example.org/a"))
        assert sent.reply_markup is not None


async def test_the_menu_button_is_remembered_and_checked() -> None:
    async with BotAPIDouble() as api, api.ptb_bot() as tg:
        button = MenuButtonWebApp("Settings", WebAppInfo("https://x.example.org/app"))
        assert await tg.set_chat_menu_button(menu_button=button)
        shown = await tg.get_chat_menu_button(USER_ID)
        assert isinstance(shown, MenuButtonWebApp) and shown.web_app.url.endswith("/app")
        with pytest.raises(BadRequest, match=r"(?i)only https"):
            await tg.set_chat_menu_button(
                menu_button=MenuButtonWebApp("S", WebAppInfo("http://x.example.org/app"))
            )
        assert api.spec_violations == []
