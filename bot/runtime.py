"""The process: `press-digest run --role ROLES` reads settings, opens the database and runs roles.

Four roles, any of them in one process (`all` is all four):
- `updates`: the Telegram front door (bot.telegram.app): long polling, the handlers;
- `poller`: polls the feeds that are due (claimed in the database) and matches them;
- `scheduler`: queues the digests that are due (one per period, whoever queues it);
- `sender`: empties the outbox (bot.delivery.sender) within the deployment's SEND_RATE.
Any number of pollers, schedulers and senders share one PostgreSQL: everything they share
is claimed or counted in the database. Roles in one process share the Bot and the send
budget; on PostgreSQL the replies of every process take SEND_RATE's shared slots like the
senders (bot.delivery.rate), so an `updates`-only process counts too. The handlers, the
poller and the scheduler wake a sender of their own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from telegram import Bot
from telegram.error import InvalidToken, NetworkError

from bot.config import ConfigError, Settings
from bot.db import (
    DatabaseUnreachable,
    SessionFactory,
    dialect_of,
    migrate,
    open_database,
)
from bot.delivery.budget import SendBudget
from bot.delivery.limits import DeliveryLimits
from bot.delivery.outbox import count_unfinished
from bot.delivery.rate import FREE, SharedRate
from bot.delivery.sender import Sender
from bot.delivery.telegram_transport import TelegramTransport, build_bot
from bot.http import WebhookInbox, http_server
from bot.telegram.app import build_application, start_updates, stop_updates
from bot.telegram.common import BotDeps

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
ROLES = ("updates", "poller", "scheduler", "sender")
POLL_TICK_SECONDS = 15.0  # the poller claims only the feeds that are due
DIGEST_TICK_SECONDS = 30.0
PRUNE_INTERVAL_SECONDS = 3600.0  # the scheduler prunes the outbox and the matches (bot.prune)
SENDER_STOP_TIMEOUT = 8.0  # with the updater's, inside SIGTERM's 10 s
TICK_STOP_TIMEOUT = 5.0  # a tick still running at SIGTERM is cancelled after this
# a CLI run should end: after this, what is still queued (long backoffs) waits for `run`
DRAIN_TIMEOUT = 600.0


def parse_roles(text: str) -> tuple[str, ...]:
    """`updates,sender` -> the roles in their canonical order; ValueError names `--role`."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("--role needs a role: updates, poller, scheduler, sender or all")
    if "all" in names:
        return ROLES
    unknown = [name for name in names if name not in ROLES]
    if unknown:
        raise ValueError(
            f"--role: {unknown[0]!r} is not a role; use updates, poller, scheduler, sender "
            "or all, comma-separated (e.g. --role poller,scheduler)"
        )
    return tuple(role for role in ROLES if role in names)


def role_label(roles: Sequence[str]) -> str:
    """What /healthz reports: `all`, or the roles comma-separated."""
    return "all" if tuple(roles) == ROLES else ",".join(roles)


async def _every(interval: float, first: float, stop: asyncio.Event, name: str, job: Job) -> None:
    """Runs `job` after `first` s, then every `interval` s, until `stop`; a failure is logged."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), first)
    while not stop.is_set():
        try:
            await job()
        except Exception:
            log.exception("%s tick failed", name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _stop_task(task: asyncio.Task[None] | None, seconds: float, what: str) -> None:
    """Lets `task` finish within `seconds`, then cancels it."""
    if task is None:
        return
    try:
        await asyncio.wait_for(task, seconds)
    except (TimeoutError, asyncio.CancelledError):
        log.warning("the %s did not stop in %ss", what, seconds)
    except Exception:
        log.exception("the %s failed", what)


async def serve(
    settings: Settings,
    sessions: SessionFactory,
    stop: asyncio.Event,
    *,
    roles: Sequence[str] = ROLES,
    poll_timeout: int = 30,
    poll_tick: float = POLL_TICK_SECONDS,
    digest_tick: float = DIGEST_TICK_SECONDS,
    progress_interval: float = 3.0,
    started: asyncio.Event | None = None,
    limits: DeliveryLimits | None = None,
    webhook: WebhookInbox | None = None,
) -> None:
    """Runs `roles` on the open database until `stop` is set, then stops them within 10 s.

    The `updates` role long-polls, or takes updates from `webhook` (the HTTP server's path).

    `limits` are Telegram's unless given (tests shrink them); replies and the sender share
    one budget made from them.
    """
    from bot.digest.service import queue_due_digests
    from bot.pipeline import poll_due
    from bot.prune import prune

    limits = limits or DeliveryLimits.from_settings(settings)
    budget = SendBudget.for_limits(limits)
    # PostgreSQL: any number of processes send for the deployment, so replies take SEND_RATE
    # slots from the database like the senders (one SharedRate per process, shared by its
    # roles). A process without a sender takes one slot at a time: a grant it would not use
    # up would be lost to the senders.
    free_rate = None
    if dialect_of(sessions) != "sqlite":
        grant = limits.rate_grant if "sender" in roles else 0.0
        free_rate = SharedRate(sessions, FREE, limits.send_rate, grant=grant)
    sender: Sender | None = None
    inner_stop = asyncio.Event()  # the roles' own stop: set once `stop` is, in the finally
    tasks: dict[str, asyncio.Task[None]] = {}

    def wake_sender() -> None:
        if sender is not None:
            sender.wake()

    async def poll_job() -> None:
        if any(report.new for report in await poll_due(sessions, settings)):
            wake_sender()  # instant alerts may have been queued

    pruned_at: float | None = None

    async def digest_job() -> None:
        nonlocal pruned_at
        if await queue_due_digests(sessions, mini_app_url=settings.mini_app_url):
            wake_sender()
        # the outbox and the matches past their retention, at most once an hour a process
        moment = asyncio.get_running_loop().time()
        if pruned_at is None or moment - pruned_at >= PRUNE_INTERVAL_SECONDS:
            pruned_at = moment
            await prune(sessions, settings)

    async with contextlib.AsyncExitStack() as stack:
        app = None
        bot: Bot | None = None
        if "updates" in roles:
            app = build_application(settings, sessions, budget, free_rate)
            deps: BotDeps = app.bot_data["deps"]
            deps.progress_interval = progress_interval
            await stack.enter_async_context(app)
            bot = app.bot
        try:
            if "sender" in roles:
                if bot is None:
                    bot = await stack.enter_async_context(build_bot(settings, limits))
                transport = TelegramTransport(bot)
                sender = Sender(
                    sessions, transport, settings, limits=limits, budget=budget, free_rate=free_rate
                )
                if app is not None:
                    deps.sender = sender  # the handlers wake it after queueing
                tasks["sender"] = asyncio.create_task(sender.run(inner_stop), name="sender")
            if "poller" in roles:
                tasks["poller"] = asyncio.create_task(
                    _every(poll_tick, 1.0, inner_stop, "feed poll", poll_job), name="poller"
                )
            if "scheduler" in roles:
                tasks["scheduler"] = asyncio.create_task(
                    _every(digest_tick, min(2.0, digest_tick), inner_stop, "digest", digest_job),
                    name="scheduler",
                )
            if app is not None:
                await start_updates(app, poll_timeout, sessions=sessions, webhook=webhook)
            log.info("running: %s", role_label(roles))
            if started is not None:
                started.set()
            await stop.wait()
            log.info("stopping")
        finally:
            inner_stop.set()  # the sender finishes what it holds while the updater stops
            if app is not None:
                for task in list(deps.background):
                    task.cancel()
            await asyncio.gather(
                stop_updates(app, webhook) if app is not None else asyncio.sleep(0),
                _stop_task(tasks.get("sender"), SENDER_STOP_TIMEOUT, "sender"),
                _stop_task(tasks.get("poller"), TICK_STOP_TIMEOUT, "poller"),
                _stop_task(tasks.get("scheduler"), TICK_STOP_TIMEOUT, "scheduler"),
            )


async def run_until_signal(settings: Settings, roles: Sequence[str] = ROLES) -> int:
    """Migrations, FEEDS, the HTTP server, then `roles` until SIGINT or SIGTERM."""
    from bot.feeds.poller import sync_configured_feeds

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows has no signal handlers
            loop.add_signal_handler(sig, stop.set)
    async with open_database(settings.database_url) as (engine, sessions):
        await migrate(engine)
        await sync_configured_feeds(sessions, settings.feeds)
        # webhooks arrive at the updates role only; other roles serve /healthz and /metrics
        webhook = WebhookInbox.from_settings(settings) if "updates" in roles else None
        async with http_server(
            sessions,
            settings.http_host,
            settings.http_port,
            role_label(roles),
            settings=settings,
            webhook=webhook,
        ):
            await serve(settings, sessions, stop, roles=roles, webhook=webhook)
    log.info("stopped cleanly")
    return 0


def run(settings: Settings, roles: Sequence[str] = ROLES) -> int:
    """`press-digest run`: 0 after a clean stop; 2 when Telegram rejects the token."""
    try:
        return asyncio.run(run_until_signal(settings, roles))
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

    secret = settings.bot_token.get_secret_value() if settings.bot_token else ""
    return RedactTokenFilter([secret]).redact(text)


async def send_digests(sessions: SessionFactory, settings: Settings, *, force: bool) -> str:
    """`press-digest send-digests`: queues due digests (every active chat with `force`), then
    sends the outbox empty; a one-line summary."""
    from bot.digest.service import queue_due_digests

    limits = DeliveryLimits.from_settings(settings)
    bot = build_bot(settings, limits)  # ConfigError (exit 2) when BOT_TOKEN is missing
    queued = await queue_due_digests(sessions, force=force, mini_app_url=settings.mini_app_url)
    try:
        await bot.initialize()
    except InvalidToken:  # PTB's message would show the token
        raise ConfigError("BOT_TOKEN was rejected by Telegram: check it with @BotFather") from None
    try:
        sender = Sender(sessions, TelegramTransport(bot), settings, limits=limits)
        stats = await sender.drain(timeout=DRAIN_TIMEOUT)
    finally:
        await bot.shutdown()
    summary = f"queued {queued}, sent {stats.sent}, blocked {stats.blocked}, failed {stats.failed}"
    left = await count_unfinished(sessions)
    return summary + (f" ({left} still queued for a retry)" if left else "")


__all__ = ["ROLES", "parse_roles", "role_label", "run", "run_until_signal", "send_digests", "serve"]
