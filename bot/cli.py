"""`press-digest` (also `python -m bot`): run the bot, or do one job of it from the shell.

Exit status: 0 success, 2 usage or configuration error (one line on stderr), 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict
from importlib import metadata
from typing import Any

from bot.config import ConfigError, Settings, load_settings
from bot.db import DatabaseUnreachable, SessionFactory, migrate, open_database
from bot.logging import setup_logging

log = logging.getLogger("bot")


def package_version() -> str:
    try:
        return metadata.version("press-digest")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        from bot import __version__

        return __version__


class UsageError(Exception):
    """A wrong argument: exit 2 with this one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="press-digest",
        description="Government press releases as short personal Telegram digests.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="migrate, then run the bot until SIGINT/SIGTERM")
    run.add_argument(
        "--role",
        default="all",
        metavar="ROLES",
        help="comma-separated: updates, poller, scheduler, sender; all (the default) is all four",
    )
    sub.add_parser("migrate", help="apply pending database migrations")
    poll = sub.add_parser("poll", help="poll every feed once now")
    poll.add_argument("--json", action="store_true", help="print a JSON array and nothing else")
    preview = sub.add_parser("preview", help="print the digest QUERY would have produced")
    preview.add_argument("query", metavar="QUERY", nargs="+")
    preview.add_argument("--days", type=int, default=7, metavar="N")
    send = sub.add_parser("send-digests", help="send the digests that are due")
    send.add_argument("--now", action="store_true", help="every active chat, whatever its schedule")
    broadcast = sub.add_parser("broadcast", help="queue TEXT (Telegram HTML) to every active chat")
    broadcast.add_argument("text", metavar="TEXT", nargs="+")
    stats = sub.add_parser("stats", help="chats, subscriptions, feeds, releases, messages")
    stats.add_argument("--json", action="store_true", help="print JSON")
    return parser


async def _with_database(
    settings: Settings, job: Callable[[SessionFactory], Awaitable[int]]
) -> int:
    """Opens the database, applies pending migrations, registers FEEDS, runs `job`."""
    from bot.feeds.poller import sync_configured_feeds

    async with open_database(settings.database_url) as (engine, sessions):
        await migrate(engine)
        await sync_configured_feeds(sessions, settings.feeds)
        return await job(sessions)


async def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    async with open_database(settings.database_url) as (engine, _):
        await migrate(engine)
    print("database is up to date", file=sys.stderr)
    return 0


async def cmd_poll(settings: Settings, args: argparse.Namespace) -> int:
    from bot.pipeline import poll_all

    async def job(sessions: SessionFactory) -> int:
        reports = await poll_all(sessions, settings)
        if args.json:
            print(json.dumps([r.as_json() for r in reports], ensure_ascii=False, indent=2))
        else:
            for r in reports:
                line = f"{r.status:<13} new={r.new:<4} updated={r.updated:<4} {r.url}"
                print(line + (f"  ({r.error})" if r.error else ""))
        if not reports:
            print(
                "press-digest: no feeds to poll: set FEEDS or add one with /addfeed",
                file=sys.stderr,
            )
            return 1
        if all(r.status == "error" for r in reports):
            print("press-digest: no feed could be fetched (see the errors above)", file=sys.stderr)
            return 1
        return 0

    return await _with_database(settings, job)


async def cmd_preview(settings: Settings, args: argparse.Namespace) -> int:
    if args.days < 1:
        raise UsageError("--days must be 1 or more, e.g. --days 7")
    from bot.i18n import t_plain
    from bot.matching.preview import preview_digest
    from bot.matching.query import QueryError

    query = " ".join(args.query)

    async def job(sessions: SessionFactory) -> int:
        try:
            print(await preview_digest(sessions, query, days=args.days))
        except QueryError as exc:  # the words /subscribe would use, in English
            raise UsageError(t_plain("en", exc.key, **exc.params)) from None
        return 0

    return await _with_database(settings, job)


async def cmd_send_digests(settings: Settings, args: argparse.Namespace) -> int:
    from bot.runtime import send_digests

    async def job(sessions: SessionFactory) -> int:
        summary = await send_digests(sessions, settings, force=args.now)
        print(summary)
        return 0

    return await _with_database(settings, job)


async def cmd_broadcast(settings: Settings, args: argparse.Namespace) -> int:
    from bot.delivery.broadcast import queue_broadcast
    from bot.delivery.html import TelegramHTMLError

    text = " ".join(args.text)

    async def job(sessions: SessionFactory) -> int:
        try:
            broadcast = await queue_broadcast(sessions, text, created_by=None)
        except TelegramHTMLError as exc:
            raise UsageError(f"not sent: {exc}") from None
        print(f"broadcast #{broadcast.id} queued to {broadcast.total} chats")
        return 0

    return await _with_database(settings, job)


async def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    from bot.stats import collect_stats, render_stats_text

    async def job(sessions: SessionFactory) -> int:
        stats = await collect_stats(sessions)
        if args.json:
            print(json.dumps(asdict(stats), default=str, ensure_ascii=False, indent=2))
        else:
            print(render_stats_text(stats))
        return 0

    return await _with_database(settings, job)


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.runtime import parse_roles, run

    try:
        roles = parse_roles(args.role)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings.token  # noqa: B018  (ConfigError, exit 2, before anything starts)
    return run(settings, roles)


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "migrate": cmd_migrate,
    "poll": cmd_poll,
    "preview": cmd_preview,
    "send-digests": cmd_send_digests,
    "broadcast": cmd_broadcast,
    "stats": cmd_stats,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        settings = load_settings()
        setup_logging(settings.log_level, settings)
        if args.command == "run":
            return cmd_run(settings, args)
        return asyncio.run(COMMANDS[args.command](settings, args))
    except (UsageError, ConfigError) as exc:
        print(f"press-digest: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnreachable as exc:
        print(f"press-digest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the person, the traceback in the log at DEBUG
        log.debug("command failed", exc_info=True)
        print(f"press-digest: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
