"""Admin commands (user ids in ADMIN_IDS): /broadcast, /stats, /feeds, /addfeed, /removefeed.

Anyone else is told the command is for admins, and nothing more.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.delivery.html import MAX_MESSAGE_UTF16, escape, utf16_len
from bot.i18n import Html, feed_error, t, t_plain
from bot.models import BroadcastState, Chat
from bot.telegram import keyboards
from bot.telegram.common import (
    MESSAGE_BUDGET,
    argument_or_usage,
    callback_match,
    current_chat,
    deps,
    drop_buttons,
    input_error_text,
    local_time,
    message_of,
    parse_number,
    send,
    send_in_parts,
    shown,
)

log = logging.getLogger(__name__)


def is_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    user = update.effective_user
    return user is not None and user.id in deps(context).settings.admin_ids


async def admin_chat(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Chat | None:
    """The chat, if the sender is an admin; otherwise tells them the command is for admins."""
    chat = await current_chat(update, context)
    if not is_admin(update, context):
        await send(update, context, t(chat.language, "admins_only"))
        return None
    return chat


async def stats_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.stats import collect_stats, render_stats_text

    chat = await admin_chat(update, context)
    if chat is None:
        return
    text = render_stats_text(await collect_stats(deps(context).sessions), chat.language)
    # one <pre> per message, split between lines, so that each part is valid HTML on its own
    parts: list[list[str]] = [[]]
    size = 0
    for line in text.splitlines():
        escaped = escape(line)
        if parts[-1] and size + utf16_len(escaped) + 1 > MESSAGE_BUDGET:
            parts.append([])
            size = 0
        parts[-1].append(escaped)
        size += utf16_len(escaped) + 1
    for index, part in enumerate(parts):
        body = "<pre>" + "\n".join(part or ["-"]) + "</pre>"
        await send(
            update, context, f"{t(chat.language, 'stats_header')}\n{body}" if index == 0 else body
        )


async def feeds_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.feeds.poller import list_feeds

    chat = await admin_chat(update, context)
    if chat is None:
        return
    lang = chat.language
    feeds = await list_feeds(deps(context).sessions)
    if not feeds:
        await send(update, context, t(lang, "feeds_none"))
        return
    blocks = [t(lang, "feeds_header", count=len(feeds))]
    for number, feed in enumerate(feeds, start=1):
        error = feed_error(lang, feed.last_error) if feed.last_error else None
        if error and feed.last_error_at is not None:
            error = f"{local_time(chat, feed.last_error_at)} {error}"
        blocks.append(
            t(
                lang,
                "feeds_item",
                number=number,
                url=shown(feed.url) if len(feed.url) > 200 else feed.url,
                success=local_time(chat, feed.last_success_at)
                if feed.last_success_at
                else t_plain(lang, "never"),
                error=shown(error) if error else t_plain(lang, "none"),
                items=feed.item_count,
                next=local_time(chat, feed.next_poll_at),
            )
        )
    await send_in_parts(update, context, blocks)


async def addfeed_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.feeds.errors import FeedInputError
    from bot.pipeline import add_feed

    chat = await admin_chat(update, context)
    if chat is None:
        return
    lang = chat.language
    url = await argument_or_usage(update, context, lang, "addfeed_usage")
    if url is None:
        return
    d = deps(context)
    user = update.effective_user
    try:
        added_by = user.id if user is not None else None
        report = await add_feed(d.sessions, d.settings, url, added_by=added_by)
    except FeedInputError as exc:
        await send(update, context, input_error_text(lang, exc))
        return
    if report.status == "error":
        text = t(lang, "addfeed_failed", url=report.url, error=feed_error(lang, report.error))
    elif report.status == "not_modified" or report.new == 0:
        text = t(lang, "addfeed_not_modified", url=report.url)
    else:
        text = t(lang, "addfeed_ok", url=report.url, count=report.new)
    await send(update, context, text)


async def removefeed_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.feeds.poller import list_feeds, remove_feed

    chat = await admin_chat(update, context)
    if chat is None:
        return
    lang = chat.language
    value = await argument_or_usage(update, context, lang, "removefeed_usage")
    if value is None:
        return
    sessions = deps(context).sessions
    feeds = await list_feeds(sessions)
    number = parse_number(value)
    if number is None or not 1 <= number <= len(feeds):
        await send(update, context, t(lang, "removefeed_not_found", value=shown(value)))
        return
    feed = feeds[number - 1]
    assert feed.id is not None
    if await remove_feed(sessions, feed.id):
        await send(update, context, t(lang, "removefeed_ok", url=feed.url))
    else:
        await send(update, context, t(lang, "removefeed_not_found", value=shown(value)))


# --- broadcast ----------------------------------------------------------------------------


async def broadcast_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Shows the text as it will look, with Confirm / Cancel; nothing is queued yet."""
    from bot.delivery.broadcast import create_broadcast
    from bot.delivery.html import TelegramHTMLError

    chat = await admin_chat(update, context)
    if chat is None:
        return
    lang = chat.language
    text = await argument_or_usage(update, context, lang, "broadcast_usage")
    if text is None:
        return
    user = update.effective_user
    try:
        broadcast = await create_broadcast(
            deps(context).sessions, text, created_by=user.id if user is not None else None
        )
    except TelegramHTMLError as exc:  # why, in the admin's language
        reason = Html(t(lang, exc.key, **exc.params))
        await send(update, context, t(lang, "broadcast_bad_html", error=reason))
        return
    assert broadcast.id is not None
    header = t(lang, "broadcast_preview", id=broadcast.id)
    markup = keyboards.broadcast_keyboard(lang, broadcast.id)
    preview = f"{header}\n\n{broadcast.text}"
    if (
        utf16_len(preview) > MAX_MESSAGE_UTF16
    ):  # the text alone fits (it was checked); the header goes first
        await send(update, context, header)
        preview = broadcast.text
    try:
        await send(update, context, preview, markup)
    except BadRequest as exc:  # Telegram saw something the checker let through
        await send(update, context, t(lang, "broadcast_bad_html", error=shown(exc.message)))


async def broadcast_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Confirm or Cancel under a broadcast preview: admins only."""
    from bot.delivery.broadcast import cancel_broadcast, confirm_broadcast

    query = update.callback_query
    match = callback_match(update, keyboards.BROADCAST)
    assert query is not None and match is not None
    chat = await current_chat(update, context)
    lang = chat.language
    if query.from_user.id not in deps(context).settings.admin_ids:
        await query.answer(t_plain(lang, "button_admins_only_broadcast"), show_alert=True)
        return
    sessions = deps(context).sessions
    broadcast_id = int(match[2])
    message = message_of(update)
    if match[1] == "no":
        cancelled = await cancel_broadcast(sessions, broadcast_id)
        if cancelled is None or cancelled.state != BroadcastState.cancelled:
            await query.answer(t_plain(lang, "button_broadcast_stale"))
            return
        await query.answer(t_plain(lang, "button_broadcast_cancelled"))
        await drop_buttons(message)
        await send(update, context, t(lang, "broadcast_cancelled", id=broadcast_id))
        return
    try:
        confirmation = await confirm_broadcast(sessions, broadcast_id)
    except (LookupError, ValueError) as exc:
        log.info("broadcast %s cannot be confirmed: %s", broadcast_id, exc)
        await query.answer(t_plain(lang, "button_broadcast_stale"))
        return
    if not confirmation.queued_now:  # another tap (or a cancel) got there first
        await query.answer(t_plain(lang, "button_broadcast_stale"))
        return
    confirmed = confirmation.broadcast
    d = deps(context)
    d.wake_sender()
    await query.answer(t_plain(lang, "button_broadcast_queued", count=confirmed.total))
    await drop_buttons(message)
    progress = await send(
        update, context, t(lang, "broadcast_queued", id=broadcast_id, count=confirmed.total)
    )
    if progress is not None:
        d.start_background(_follow_broadcast(context, progress, broadcast_id, lang))


async def _follow_broadcast(
    context: ContextTypes.DEFAULT_TYPE, progress: Message, broadcast_id: int, lang: str
) -> None:
    """Edits the progress message every few seconds until nothing is pending, then the tally."""
    from bot.delivery.broadcast import broadcast_tally

    d = deps(context)
    shown_text = progress.text_html
    while True:
        try:
            tally = await broadcast_tally(d.sessions, broadcast_id)
        except Exception:
            log.exception("broadcast %s: no tally", broadcast_id)
            return
        done = tally.pending == 0
        text = t(
            lang,
            "broadcast_done" if done else "broadcast_progress",
            id=broadcast_id,
            delivered=tally.delivered,
            blocked=tally.blocked,
            failed=tally.failed,
            pending=tally.pending,
            total=tally.total,
        )
        if text != shown_text:
            try:
                await progress.edit_text(text)
                shown_text = text
            except TelegramError as exc:
                log.info("broadcast %s: progress not updated: %s", broadcast_id, exc)
        if done:
            return
        await asyncio.sleep(d.progress_interval)
