"""The Telegram front door: builds the Application and runs the `updates` role.

`build_application()` wires every handler; `start_updates()` / `stop_updates()` start and
stop long polling. The process (ticks, the sender, the HTTP server) is bot.runtime's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from telegram import (
    BotCommand,
    BotCommandScope,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    LinkPreviewOptions,
    MenuButtonWebApp,
    Update,
    WebAppInfo,
)
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
from bot.delivery.rate import SharedRate
from bot.http import WebhookInbox
from bot.i18n import t_plain
from bot.received_updates import first_delivery
from bot.telegram import keyboards
from bot.telegram.commands import admin, chat, schedule, topics
from bot.telegram.common import BotDeps
from bot.telegram.rate_limit import BudgetRateLimiter
from bot.telegram.updates import ChatOrderedUpdateProcessor

log = logging.getLogger(__name__)

UPDATER_STOP_TIMEOUT = 4.0
# what the handlers use; anything else would only cost traffic
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER]

Callback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Command:
    """One command: its names (the first is the menu's), handler, and who sees it in the menu."""

    names: tuple[str, ...]
    callback: Callback
    menu: Literal["everyone", "admins"] = "everyone"

    @property
    def description_key(self) -> str:
        return f"cmd_{self.names[0]}"


# in the order Telegram's menu shows them
COMMANDS: tuple[Command, ...] = (
    Command(("start",), topics.start),
    Command(("help",), topics.help_command),
    Command(("subscribe", "sub"), topics.subscribe_command),
    Command(("unsubscribe", "unsub"), topics.unsubscribe_command),
    Command(("list",), topics.list_command),
    Command(("digest",), schedule.digest_command),
    Command(("time",), schedule.time_command),
    Command(("timezone",), schedule.timezone_command),
    Command(("frequency",), schedule.frequency_command),
    Command(("pause",), schedule.pause_command),
    Command(("resume",), schedule.resume_command),
    Command(("search",), topics.search),
    Command(("lang",), schedule.lang_command),
    Command(("settings",), schedule.settings_command),
    Command(("whoami",), topics.whoami_command),
    Command(("stop",), chat.stop_command),
    Command(("broadcast",), admin.broadcast_command, menu="admins"),
    Command(("stats",), admin.stats_command, menu="admins"),
    Command(("feeds",), admin.feeds_command, menu="admins"),
    Command(("addfeed",), admin.addfeed_command, menu="admins"),
    Command(("removefeed",), admin.removefeed_command, menu="admins"),
)
SUBSCRIBER_COMMANDS = tuple(c.names[0] for c in COMMANDS if c.menu == "everyone")
ADMIN_COMMANDS = tuple(c.names[0] for c in COMMANDS if c.menu == "admins")

# one handler per kind of button; anything else is answered as out of date
BUTTONS: tuple[tuple[re.Pattern[str], Callback], ...] = (
    (keyboards.SUBSCRIBE, topics.subscribe_button),
    (keyboards.UNSUBSCRIBE, topics.unsubscribe_button),
    (keyboards.BROADCAST, admin.broadcast_button),
    (keyboards.STOP, chat.stop_button),
    (keyboards.TIMEZONE, schedule.timezone_button),
    (keyboards.MANAGE, schedule.manage_button),
)


def build_application(
    settings: Settings,
    sessions: SessionFactory,
    budget: SendBudget | None = None,
    shared_rate: SharedRate | None = None,
) -> Application:  # type: ignore[type-arg]
    """The Application with every handler, pointed at TELEGRAM_API_URL; not started.

    Chats are handled side by side, each in order; every call it makes draws on `budget`
    (shared with the sender) and, when given, on `shared_rate` (the deployment's SEND_RATE,
    shared with every process), and is retried after a 429.
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
        .rate_limiter(BudgetRateLimiter(budget, shared_rate=shared_rate))
        .build()
    )
    app.bot_data["deps"] = BotDeps(settings=settings, sessions=sessions)
    new_messages = filters.UpdateType.MESSAGE
    for command in COMMANDS:
        app.add_handler(CommandHandler(list(command.names), command.callback, filters=new_messages))
    for pattern, on_button in BUTTONS:
        app.add_handler(CallbackQueryHandler(on_button, pattern=pattern))
    app.add_handler(CallbackQueryHandler(chat.stale_button))
    app.add_handler(
        ChatMemberHandler(chat.bot_membership_changed, ChatMemberHandler.MY_CHAT_MEMBER)
    )
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE & new_messages, chat.chat_migrated))
    app.add_handler(MessageHandler(filters.COMMAND & new_messages, chat.unknown_command))
    app.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE & new_messages & ~filters.COMMAND & ~filters.StatusUpdate.ALL,
            chat.private_text,
        )
    )
    app.add_error_handler(chat.on_error)
    return app


async def register_commands(app: Application) -> None:  # type: ignore[type-arg]
    """The command menu in English (default) and Chinese, the admin commands too in each
    admin's private chat; a failure is logged, not fatal."""
    d = app.bot_data["deps"]
    assert isinstance(d, BotDeps)
    scopes: list[tuple[BotCommandScope, Literal["everyone", "admins"]]] = [
        (BotCommandScopeDefault(), "everyone")
    ]
    scopes += [(BotCommandScopeChat(admin_id), "admins") for admin_id in d.settings.admin_ids]
    for scope, audience in scopes:
        shown = [c for c in COMMANDS if audience == "admins" or c.menu == "everyone"]
        for language_code, lang in ((None, "en"), ("zh", "zh")):
            commands = [BotCommand(c.names[0], t_plain(lang, c.description_key)) for c in shown]
            try:
                await app.bot.set_my_commands(commands, scope=scope, language_code=language_code)
            except TelegramError as exc:
                where = getattr(scope, "chat_id", scope.type)
                log.warning("setMyCommands (%s, %s) failed: %s", where, lang, exc)
    url = d.settings.mini_app_url
    if url is not None:  # private chats' menu button opens the Mini App
        text = f"{t_plain('en', 'settings_menu_button')} · {t_plain('zh', 'settings_menu_button')}"
        try:
            await app.bot.set_chat_menu_button(menu_button=MenuButtonWebApp(text, WebAppInfo(url)))
        except TelegramError as exc:
            log.warning("setChatMenuButton failed: %s", exc)


async def start_updates(
    app: Application,  # type: ignore[type-arg]
    poll_timeout: int = 30,
    *,
    sessions: SessionFactory | None = None,
    webhook: WebhookInbox | None = None,
) -> None:
    """The `updates` role on an initialised `app`: the command menu, handlers, and updates by
    long polling or, with `webhook` (and `sessions` for its dedup), by webhook."""
    await register_commands(app)
    await app.start()
    await start_receiving(app, sessions, webhook, poll_timeout)
    log.info("bot @%s is receiving updates", app.bot.username)


async def stop_updates(app: Application, webhook: WebhookInbox | None = None) -> None:  # type: ignore[type-arg]
    """Stops receiving (long polling within UPDATER_STOP_TIMEOUT) and the handlers."""
    if webhook is not None:
        webhook.handler = None  # Telegram is told 503 and delivers again later
    await _stop_updater(app)
    if app.running:
        await app.stop()


async def start_receiving(
    app: Application,  # type: ignore[type-arg]
    sessions: SessionFactory | None,
    webhook: WebhookInbox | None,
    poll_timeout: int = 30,
) -> None:
    """Long polling, or the webhook: setWebhook, then each update handed to the Application
    once, however often Telegram (or a load balancer) delivers it."""
    if webhook is None:
        updater = app.updater
        assert updater is not None
        await updater.start_polling(
            timeout=poll_timeout, allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False
        )
        return

    assert sessions is not None, "the webhook needs the database to handle each update once"
    db = sessions

    async def hand_over(data: dict[str, Any]) -> None:
        if await first_delivery(db, int(data["update_id"])):
            await app.update_queue.put(Update.de_json(data, app.bot))
        else:
            log.info("webhook: update %s was delivered again; handled once", data["update_id"])

    webhook.handler = hand_over
    await app.bot.set_webhook(
        webhook.url, secret_token=webhook.secret, allowed_updates=ALLOWED_UPDATES
    )
    log.info("receiving updates by webhook at %s", webhook.path)


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
