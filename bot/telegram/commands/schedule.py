"""The schedule and the chat's settings: /digest, /time, /timezone, /frequency, /lang, /pause,
/resume, /settings."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, WebAppInfo
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.db import SessionFactory
from bot.i18n import t, t_plain
from bot.models import Chat
from bot.subscriptions import (
    AmbiguousTimezone,
    ChatInputError,
    set_frequency,
    set_language,
    set_paused,
    set_time,
    set_timezone,
)
from bot.telegram import keyboards
from bot.telegram.common import (
    argument_or_usage,
    callback_match,
    chat_for_button,
    chat_to_change,
    current_chat,
    deps,
    drop_buttons,
    input_error_text,
    local_time,
    message_of,
    schedule_lines,
    send,
    thread_of,
)

log = logging.getLogger(__name__)


async def digest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The digest itself is the answer (through the outbox, in this topic only); one line when
    there is nothing new."""
    from bot.digest.service import queue_digest_now

    chat = await chat_to_change(update, context)
    if chat is None:
        return
    lang = chat.language
    d = deps(context)
    assert chat.id is not None
    thread = thread_of(update.effective_message)
    outcome = await queue_digest_now(
        d.sessions, chat.id, thread_id=thread, mini_app_url=d.settings.mini_app_url
    )
    if outcome.parts_queued > 0:
        d.wake_sender()
        return
    if outcome.since is None:
        text = t(lang, "digest_empty_first")
    else:
        text = t(lang, "digest_empty", since=local_time(chat, outcome.since))
    await send(update, context, text)


ChangeSetting = Callable[[SessionFactory, Chat, str], Awaitable[Chat]]


async def _change_setting(
    update: Update, context: ContextTypes.DEFAULT_TYPE, usage_key: str, change: ChangeSetting
) -> Chat | None:
    """One argument, one domain call; the changed chat, or None when the person was told why not."""
    chat = await chat_to_change(update, context)
    if chat is None:
        return None
    value = await argument_or_usage(update, context, chat.language, usage_key)
    if value is None:
        return None
    try:
        return await change(deps(context).sessions, chat, value)
    except AmbiguousTimezone as exc:
        markup = keyboards.timezone_keyboard(exc.candidates)
        await send(update, context, input_error_text(chat.language, exc), markup)
    except ChatInputError as exc:
        await send(update, context, input_error_text(chat.language, exc))
    return None


async def _reply_with_schedule(
    update: Update, context: ContextTypes.DEFAULT_TYPE, chat: Chat | None
) -> None:
    """The new schedule in one line: it names the time, the rhythm and the timezone once."""
    if chat is not None:
        await send(update, context, " ".join(schedule_lines(chat)))


async def time_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _reply_with_schedule(
        update, context, await _change_setting(update, context, "time_usage", set_time)
    )


async def timezone_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _reply_with_schedule(
        update, context, await _change_setting(update, context, "timezone_usage", set_timezone)
    )


async def frequency_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _reply_with_schedule(
        update, context, await _change_setting(update, context, "frequency_usage", set_frequency)
    )


async def lang_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = await _change_setting(update, context, "lang_usage", set_language)
    if chat is not None:
        await send(update, context, t(chat.language, "lang_set"))


async def timezone_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """One of the closest zones /timezone offered: sets it."""
    query = update.callback_query
    match = callback_match(update, keyboards.TIMEZONE)
    assert query is not None and match is not None
    chat = await chat_for_button(update, context)
    if chat is None:
        return
    try:
        chat = await set_timezone(deps(context).sessions, chat, match[1])
    except ChatInputError:  # a zone tzdata no longer has
        await query.answer(t_plain(chat.language, "button_stale"))
        return
    await query.answer(t_plain(chat.language, "button_timezone_set", timezone=chat.timezone))
    await drop_buttons(message_of(update))
    await _reply_with_schedule(update, context, chat)


async def pause_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = await chat_to_change(update, context)
    if chat is None:
        return
    _, changed = await set_paused(deps(context).sessions, chat, True)
    await send(update, context, t(chat.language, "paused" if changed else "already_paused"))


async def resume_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = await chat_to_change(update, context)
    if chat is None:
        return
    chat, changed = await set_paused(deps(context).sessions, chat, False)
    if not changed:
        await send(update, context, t(chat.language, "not_paused"))
        return
    await send(update, context, "\n".join([t(chat.language, "resumed"), *schedule_lines(chat)]))


async def settings_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/settings: a button that opens the Mini App (private chats, PUBLIC_URL set)."""
    chat = await current_chat(update, context)
    lang = chat.language
    url = deps(context).settings.mini_app_url
    if chat.type != ChatType.PRIVATE:  # the Mini App speaks for one user, not for a group
        await send(update, context, t(lang, "settings_in_groups"))
    elif url is None:
        await send(update, context, t(lang, "settings_commands"))
    else:
        button = InlineKeyboardButton(t_plain(lang, "settings_button"), web_app=WebAppInfo(url))
        await send(update, context, t(lang, "settings_open"), InlineKeyboardMarkup([[button]]))


async def manage_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The Manage button under every digest: the Mini App (private chats with PUBLIC_URL),
    else what this chat (or forum topic) follows, with the commands that change it."""
    from bot.telegram.commands.topics import list_command

    query = update.callback_query
    assert query is not None
    await query.answer()
    tg_chat = update.effective_chat
    private = tg_chat is not None and tg_chat.type == ChatType.PRIVATE
    if private and deps(context).settings.mini_app_url is not None:
        await settings_command(update, context)
    else:
        await list_command(update, context)
