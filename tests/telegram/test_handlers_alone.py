"""One handler at a time: the real Application, initialised but not started (no polling, no
jobs, no sender), a context made from an update, and the Bot API double."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram import Update
from telegram.ext import Application, CallbackContext

from bot.db import SessionFactory
from bot.telegram.app import build_application
from bot.telegram.commands import topics
from tests.doubles.telegram_api import BotAPIDouble
from tests.telegram.conftest import USER_ID, make_settings


@pytest.fixture
async def app(
    api: BotAPIDouble, sessions: SessionFactory, sqlite_url: str
) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    application = build_application(make_settings(api, sqlite_url), sessions)
    async with application:  # getMe only: nothing polls, no job runs
        yield application


def _update(app: Application, raw: dict[str, Any]) -> tuple[Update, Any]:  # type: ignore[type-arg]
    update = Update.de_json(raw, app.bot)
    return update, CallbackContext.from_update(update, app)


async def test_whoami_alone_answers_with_the_ids(app: Application, api: BotAPIDouble) -> None:  # type: ignore[type-arg]
    update, context = _update(app, api.push_message(USER_ID, "/whoami"))
    await topics.whoami_command(update, context)
    [reply] = api.messages_to(USER_ID)
    assert reply.text == f"Your Telegram id: {USER_ID}\nThis chat's id: {USER_ID}"
    assert not app.running and api.calls_to("getUpdates") == []


async def test_subscribe_alone_stores_the_subscription(
    app: Application,  # type: ignore[type-arg]
    api: BotAPIDouble,
    sessions: SessionFactory,
) -> None:
    from bot.subscriptions import get_chat, list_followed

    update, context = _update(app, api.push_message(USER_ID, "/subscribe customs"))
    await topics.subscribe_command(update, context)
    assert api.messages_to(USER_ID)[0].text.startswith("Following Customs")
    chat = await get_chat(sessions, USER_ID)
    assert chat is not None
    assert [item.label for item in await list_followed(sessions, chat, 0)] == ["Customs / 海關"]
