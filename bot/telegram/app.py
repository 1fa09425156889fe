"""The Telegram front door: builds the Application and runs the `updates` role.

`build_application()` wires every handler; `start_updates()` / `stop_updates()` start and
stop long polling. The process (ticks, the sender, the HTTP server) is bot.runtime's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import BotCommand, LinkPreviewOptions, MenuButtonWebApp, Update, WebAppInfo
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)

from bot.config import Settings
from bot.db import SessionFactory
from bot.delivery.budget import SendBudget
from bot.delivery.limits import DeliveryLimits
from bot.i18n import t_plain
from bot.telegram import admin, handlers
from bot.telegram.handlers import BotDeps
from bot.telegram.rate_limit import BudgetRateLimiter
from bot.telegram.updates import ChatOrderedUpdateProcessor

log = logging.getLogger(__name__)

UPDATER_STOP_TIMEOUT = 4.0
# what the handlers use; anything else would only cost traffic
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER]

# (command, description key) in the order Telegram's menu shows them
SUBSCRIBER_COMMANDS = (
    ("start", "cmd_start"),
    ("help", "cmd_help"),
    ("subscribe", "cmd_subscribe"),
    ("unsubscribe", "cmd_unsubscribe"),
    ("list", "cmd_list"),
    ("digest", "cmd_digest"),
    ("time", "cmd_time"),
    ("timezone", "cmd_timezone"),
    ("frequency", "cmd_frequency"),
    ("pause", "cmd_pause"),
    ("resume", "cmd_resume"),
    ("search", "cmd_search"),
    ("lang", "cmd_lang"),
    ("settings", "cmd_settings"),
    ("stop", "cmd_stop"),
)

Callback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]

COMMAND_HANDLERS: tuple[tuple[tuple[str, ...], Callback], ...] = (
    (("start",), handlers.start),
    (("help",), handlers.help_command),
    (("subscribe", "sub"), handlers.subscribe_command),
    (("unsubscribe", "unsub"), handlers.unsubscribe_command),
    (("list",), handlers.list_command),
    (("digest",), handlers.digest_command),
    (("time",), handlers.time_command),
    (("timezone",), handlers.timezone_command),
    (("frequency",), handlers.frequency_command),
    (("pause",), handlers.pause_command),
    (("resume",), handlers.resume_command),
    (("search",), handlers.search),
    (("lang",), handlers.lang_command),
    (("settings",), handlers.settings_command),
    (("stop",), handlers.stop_command),
    (("broadcast",), admin.broadcast_command),
    (("stats",), admin.stats_command),
    (("feeds",), admin.feeds_command),
    (("addfeed",), admin.addfeed_command),
    (("removefeed",), admin.removefeed_command),
)


def build_application(
    settings: Settings, sessions: SessionFactory, budget: SendBudget | None = None
) -> Application:  # type: ignore[type-arg]
    """The Application with every handler, pointed at TELEGRAM_API_URL; not started.

    Chats are handled side by side, each in order; every call it makes draws on `budget`
    (shared with the sender) and is retried after a 429.
    """
    budget = budget or SendBudget.for_limits(DeliveryLimits.from_settings(settings))
    app = (
        Application.builder()
        .token(settings.token)
        .base_url(settings.telegram_api_url)
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        .concurrent_updates(ChatOrderedUpdateProcessor())
        .rate_limiter(BudgetRateLimiter(budget))
        .build()
    )
    app.bot_data["deps"] = BotDeps(settings=settings, sessions=sessions)
    new_messages = filters.UpdateType.MESSAGE
    for names, callback in COMMAND_HANDLERS:
        app.add_handler(CommandHandler(list(names), callback, filters=new_messages))
    app.add_handler(CallbackQueryHandler(handlers.button))
    app.add_handler(
        ChatMemberHandler(handlers.bot_membership_changed, ChatMemberHandler.MY_CHAT_MEMBER)
    )
    app.add_handler(
        MessageHandler(filters.StatusUpdate.MIGRATE & new_messages, handlers.chat_migrated)
    )
    app.add_handler(MessageHandler(filters.COMMAND & new_messages, handlers.unknown_command))
    app.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE & new_messages & ~filters.COMMAND & ~filters.StatusUpdate.ALL,
            handlers.private_text,
        )
    )
    app.add_error_handler(handlers.on_error)
    return app


async def register_commands(app: Application) -> None:  # type: ignore[type-arg]
    """The command menu in English (default) and Chinese; a failure is logged, not fatal."""
    for language_code, lang in ((None, "en"), ("zh", "zh")):
        commands = [BotCommand(name, t_plain(lang, key)) for name, key in SUBSCRIBER_COMMANDS]
        try:
            await app.bot.set_my_commands(commands, language_code=language_code)
        except TelegramError as exc:
            log.warning("setMyCommands (%s) failed: %s", language_code or "default", exc)
    d = app.bot_data["deps"]
    assert isinstance(d, BotDeps)
    url = d.settings.mini_app_url
    if url is not None:  # private chats' menu button opens the Mini App
        text = f"{t_plain('en', 'settings_menu_button')} · {t_plain('zh', 'settings_menu_button')}"
        try:
            await app.bot.set_chat_menu_button(menu_button=MenuButtonWebApp(text, WebAppInfo(url)))
        except TelegramError as exc:
            log.warning("setChatMenuButton failed: %s", exc)


async def start_updates(app: Application, poll_timeout: int = 30) -> None:  # type: ignore[type-arg]
    """The `updates` role on an initialised `app`: the command menu, handlers, long polling."""
    await register_commands(app)
    await app.start()
    updater = app.updater
    assert updater is not None
    await updater.start_polling(
        timeout=poll_timeout, allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False
    )
    log.info("bot @%s is receiving updates", app.bot.username)


async def stop_updates(app: Application) -> None:  # type: ignore[type-arg]
    """Stops long polling (within UPDATER_STOP_TIMEOUT) and the handlers."""
    await _stop_updater(app)
    if app.running:
        await app.stop()


async def _stop_updater(app: Application) -> None:  # type: ignore[type-arg]
    """Stops long polling within UPDATER_STOP_TIMEOUT, even while PTB sleeps between retries.

    PTB's retry loop sleeps up to 30 s (or a 429's retry_after) without looking at its stop
    event: waiting for it would overrun SIGTERM's 10 s. Cancelling ends that sleep.
    """
    updater = app.updater
    if updater is None or not updater.running:
        return
    stopping = asyncio.ensure_future(updater.stop())
    for _ in range(2):  # the second round bounds PTB's final getUpdates after the cancel
        done, _pending = await asyncio.wait({stopping}, timeout=UPDATER_STOP_TIMEOUT / 2)
        if done:
            break
        stopping.cancel()
    with contextlib.suppress(asyncio.CancelledError, TelegramError):
        await stopping
