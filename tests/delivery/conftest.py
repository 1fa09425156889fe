"""Fixtures for delivery tests: the Bot API double, a PTB Bot pointed at it, senders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from telegram import Bot

from bot.config import Settings
from bot.db import SessionFactory
from bot.delivery.sender import Sender
from bot.delivery.telegram_transport import TelegramTransport
from tests.delivery.helpers import limits, make_bot
from tests.doubles.telegram_api import BotAPIDouble


@pytest.fixture
async def api() -> AsyncIterator[BotAPIDouble]:
    async with BotAPIDouble() as double:
        yield double


@pytest.fixture
async def bot(api: BotAPIDouble) -> AsyncIterator[Bot]:
    async with make_bot(api) as telegram_bot:
        yield telegram_bot


@pytest.fixture
def settings() -> Settings:
    return Settings(bot_token="123456:TEST-token-abcdefghijklmnopqrstuvwxyz", send_rate=200)


@pytest.fixture
def make_sender(bot: Bot, settings: Settings) -> Callable[..., Callable[[SessionFactory], Sender]]:
    """make_sender(**limits)(sessions) -> a Sender on the double with fast test limits."""

    def factory(**overrides: Any) -> Callable[[SessionFactory], Sender]:
        return lambda sessions: Sender(
            sessions, TelegramTransport(bot), settings, limits=limits(**overrides)
        )

    return factory
