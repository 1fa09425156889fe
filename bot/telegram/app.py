"""The Telegram front door: builds the Application, and runs the whole bot (`press-digest run`).

`serve()` runs everything on one event loop until `stop` is set: long polling for updates,
the feed poller tick, the digest tick and the sender. `run_bot()` adds migrations, FEEDS
and SIGINT/SIGTERM handling around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
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
from telegram.error import InvalidToken, NetworkError, TelegramError
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

from bot.config import ConfigError, Settings
from bot.db import DatabaseUnreachable, SessionFactory, migrate, open_database
from bot.delivery.budget import SendBudget
from bot.delivery.sender import DeliveryLimits
from bot.http import WebhookInbox, http_server
from bot.i18n import t_plain
from bot.received_updates import first_delivery
from bot.telegram import keyboards
from bot.telegram.commands import admin, chat, schedule, topics
from bot.telegram.common import BotDeps, deps
from bot.telegram.rate_limit import BudgetRateLimiter
from bot.telegram.updates import ChatOrderedUpdateProcessor

log = logging.getLogger(__name__)

POLL_TICK_SECONDS = 15.0  # the poller claims only the feeds that are due
DIGEST_TICK_SECONDS = 30.0
# a tick that missed its moment (a busy loop) still runs once, not once per missed moment
JOB_KWARGS = {"misfire_grace_time": 60, "coalesce": True, "max_instances": 1}
SENDER_STOP_TIMEOUT = 8.0  # with the updater's, inside SIGTERM's 10 s
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


async def _poll_feeds_tick(context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.feeds.poller import poll_due_feeds

    d = deps(context)
    try:
        reports = await poll_due_feeds(d.sessions, d.settings)
    except Exception:
        log.exception("feed poll tick failed")
        return
    if any(report.new for report in reports):
        d.wake_sender()  # instant alerts may have been queued


async def _digest_tick(context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.digest.service import queue_due_digests

    d = deps(context)
    try:
        queued = await queue_due_digests(d.sessions)
    except Exception:
        log.exception("digest tick failed")
        return
    if queued:
        d.wake_sender()


async def serve(
    settings: Settings,
    sessions: SessionFactory,
    stop: asyncio.Event,
    *,
    poll_timeout: int = 30,
    poll_tick: float = POLL_TICK_SECONDS,
    digest_tick: float = DIGEST_TICK_SECONDS,
    progress_interval: float = 3.0,
    started: asyncio.Event | None = None,
    limits: DeliveryLimits | None = None,
    webhook: WebhookInbox | None = None,
) -> None:
    """Runs the bot (updates, poller tick, digest tick, sender) until `stop` is set.

    Updates come by long polling, or through `webhook` (the HTTP server's webhook path).

    `limits` are Telegram's unless given (tests shrink them); replies and the sender share
    one budget made from them.
    """
    from bot.delivery.sender import Sender

    limits = limits or DeliveryLimits.from_settings(settings)
    budget = SendBudget.for_limits(limits)
    app = build_application(settings, sessions, budget)
    d: BotDeps = app.bot_data["deps"]
    d.progress_interval = progress_interval
    sender_stop = asyncio.Event()
    sender_task: asyncio.Task[None] | None = None
    async with app:
        await register_commands(app)
        await app.start()
        try:
            d.sender = Sender(sessions, app.bot, settings, limits=limits, budget=budget)
            sender_task = asyncio.create_task(d.sender.run(sender_stop), name="sender")
            job_queue = app.job_queue
            assert job_queue is not None, "python-telegram-bot[job-queue] is required"
            job_queue.run_repeating(
                _poll_feeds_tick,
                interval=poll_tick,
                first=1.0,
                name="poll-feeds",
                job_kwargs=JOB_KWARGS,
            )
            job_queue.run_repeating(
                _digest_tick,
                interval=digest_tick,
                first=min(2.0, digest_tick),
                name="digests",
                job_kwargs=JOB_KWARGS,
            )
            await start_receiving(app, sessions, webhook, poll_timeout)
            log.info("bot @%s is running", app.bot.username)
            if started is not None:
                started.set()
            await stop.wait()
            log.info("stopping")
        finally:
            if webhook is not None:
                webhook.handler = None  # Telegram is told 503 and delivers again later
            sender_stop.set()  # the sender finishes what it holds while the updater stops
            for task in list(d.background):
                task.cancel()
            await asyncio.gather(_stop_updater(app), _stop_sender(sender_task))
            if app.running:
                await app.stop()


async def start_receiving(
    app: Application,  # type: ignore[type-arg]
    sessions: SessionFactory,
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

    async def hand_over(data: dict[str, Any]) -> None:
        if await first_delivery(sessions, int(data["update_id"])):
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


async def _stop_sender(sender_task: asyncio.Task[None] | None) -> None:
    if sender_task is None:
        return
    try:
        await asyncio.wait_for(sender_task, SENDER_STOP_TIMEOUT)
    except (TimeoutError, asyncio.CancelledError):
        log.warning("the sender did not stop in %ss", SENDER_STOP_TIMEOUT)
    except Exception:
        log.exception("the sender failed")


async def run_until_signal(settings: Settings) -> int:
    """Migrations, FEEDS, then the bot until SIGINT or SIGTERM."""
    from bot.feeds.poller import sync_configured_feeds

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows has no signal handlers
            loop.add_signal_handler(sig, stop.set)
    async with open_database(settings.database_url) as (engine, sessions):
        await migrate(engine)
        await sync_configured_feeds(sessions, settings.feeds)
        webhook = WebhookInbox.from_settings(settings)
        async with http_server(
            sessions, settings.http_host, settings.http_port, settings=settings, webhook=webhook
        ):
            await serve(settings, sessions, stop, webhook=webhook)
    log.info("stopped cleanly")
    return 0


def run_bot(settings: Settings) -> int:
    """`press-digest run`: 0 after a clean stop; 2 when Telegram rejects the token."""
    try:
        return asyncio.run(run_until_signal(settings))
    except InvalidToken:
        # PTB's own message quotes the token: say it in our words instead
        print(
            "press-digest: the Bot API server rejected BOT_TOKEN; check it with @BotFather",
            file=sys.stderr,
        )
        return 2
    except ConfigError as exc:  # found only at start: HTTP_PORT taken
        print(f"press-digest: {exc}", file=sys.stderr)
        return 2
    except NetworkError as exc:  # getMe at start could not reach the server
        print(
            f"press-digest: cannot reach the Bot API at TELEGRAM_API_URL="
            f"{settings.telegram_api_url}: {_redacted(str(exc), settings)}",
            file=sys.stderr,
        )
        return 1
    except DatabaseUnreachable as exc:
        print(f"press-digest: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.debug("the bot failed", exc_info=True)
        print(
            f"press-digest: error: {_redacted(f'{type(exc).__name__}: {exc}', settings)}",
            file=sys.stderr,
        )
        return 1


def _redacted(text: str, settings: Settings) -> str:
    from bot.logging import RedactTokenFilter

    secrets = [s.get_secret_value() for s in (settings.bot_token, settings.webhook_secret) if s]
    return RedactTokenFilter(secrets).redact(text)
