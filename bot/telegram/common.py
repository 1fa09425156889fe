"""What the command modules share: their dependencies, replies, the chat and who may change it.

Every reply goes to the chat (and forum topic) the command came from. In groups only the
group's administrators may change anything; read-only commands answer everyone.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from telegram import (
    Chat as TelegramChat,
)
from telegram import (
    ChatMember,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.config import Settings
from bot.db import SessionFactory
from bot.delivery.html import escape, utf16_len
from bot.digest.schedule import as_utc, chat_zone
from bot.errors import KeyedError
from bot.i18n import Html, Language, language_from_code, t, t_plain
from bot.models import Chat, Frequency, Release
from bot.subscriptions import (
    chat_or_defaults,
    register_chat,
)

if TYPE_CHECKING:
    from bot.delivery.sender import Sender

log = logging.getLogger(__name__)

MAX_QUERY_LENGTH = 200
SHOWN_VALUE_LIMIT = 60  # characters of a bad value echoed back in an error
SEARCH_LIMIT = 10
# Telegram's limit is 4096 UTF-16 code units; the margin leaves room for a header line
MESSAGE_BUDGET = 3900


@dataclass
class BotDeps:
    """What the handlers need besides the update: kept in application.bot_data['deps']."""

    settings: Settings
    sessions: SessionFactory
    sender: Sender | None = None
    progress_interval: float = 3.0  # seconds between broadcast progress edits
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def wake_sender(self) -> None:
        if self.sender is not None:
            self.sender.wake()

    def start_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


def deps(context: ContextTypes.DEFAULT_TYPE) -> BotDeps:
    found = context.application.bot_data["deps"]
    assert isinstance(found, BotDeps)
    return found


# --- helpers ------------------------------------------------------------------------------


def thread_of(message: Message | None) -> int:
    """The forum topic a message is in; 0 for the chat itself (and reply chains in groups)."""
    if message is None or not message.message_thread_id:
        return 0
    if message.is_topic_message or message.chat.is_forum:
        return message.message_thread_id
    return 0


def command_argument(message: Message | None) -> str:
    """Everything after the command word, as typed."""
    if message is None or not message.text:
        return ""
    parts = message.text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def shown(value: object) -> object:
    """A value echoed in an error, cut short so that the reply stays one line."""
    if isinstance(value, str):
        # direction marks and controls could reorder or hide the rest of the line
        value = "".join(ch for ch in value if unicodedata.category(ch) not in {"Cc", "Cf"})
        value = " ".join(value.split())
        if len(value) > SHOWN_VALUE_LIMIT:
            return value[: SHOWN_VALUE_LIMIT - 1] + "…"
    return value


def input_error_text(lang: str, exc: KeyedError) -> str:
    """The reply to input the domain refused (a query, a setting, a feed address) in `lang`."""
    return t(lang, exc.key, **{name: shown(value) for name, value in exc.params.items()})


def local_time(chat: Chat, moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return "-"
    return as_utc(moment).astimezone(chat_zone(chat)).strftime(fmt)


def release_link(release: Release) -> Html:
    """The title as a link; as plain text if the feed gave a link Telegram would not take."""
    if not release.link.lower().startswith(("http://", "https://")):
        return Html(escape(release.title))
    return Html(f'<a href="{escape(release.link)}">{escape(release.title)}</a>')


def schedule_lines(chat: Chat) -> list[str]:
    """How and when the chat gets its digest."""
    lang = chat.language
    at = chat.digest_time.strftime("%H:%M")
    if chat.frequency == Frequency.instant:
        lines = [t(lang, "schedule_instant", timezone=chat.timezone)]
    elif chat.frequency == Frequency.weekly:
        weekday = t_plain(lang, f"weekday_{chat.digest_weekday % 7}")
        lines = [t(lang, "schedule_weekly", weekday=weekday, time=at, timezone=chat.timezone)]
    else:
        lines = [t(lang, "schedule_daily", time=at, timezone=chat.timezone)]
    if chat.paused:
        lines.append(t(lang, "schedule_paused"))
    elif chat.next_digest_at is not None and chat.frequency != Frequency.instant:
        lines.append(t(lang, "next_digest", when=local_time(chat, chat.next_digest_at)))
    return lines


async def send(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> Message | None:
    """Sends `text` (HTML) to the chat and forum topic the update came from."""
    chat = update.effective_chat
    if chat is None:
        return None
    message = update.effective_message
    thread = thread_of(message) if message is not None else 0
    return await context.bot.send_message(
        chat_id=chat.id, text=text, message_thread_id=thread or None, reply_markup=markup
    )


async def argument_or_usage(
    update: Update, context: ContextTypes.DEFAULT_TYPE, lang: str, usage_key: str
) -> str | None:
    """The command's argument; without one, the command's usage is the answer (None)."""
    value = command_argument(update.effective_message)
    if not value:
        await send(update, context, t(lang, usage_key))
        return None
    return value


async def send_in_parts(
    update: Update, context: ContextTypes.DEFAULT_TYPE, blocks: list[str]
) -> None:
    """Sends blocks joined by newlines, split between blocks so each message fits."""
    part: list[str] = []
    size = 0
    for block in blocks:
        block_size = utf16_len(block) + 1
        if part and size + block_size > MESSAGE_BUDGET:
            await send(update, context, "\n".join(part))
            part, size = [], 0
        part.append(block)
        size += block_size
    if part:
        await send(update, context, "\n".join(part))


async def current_chat(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Chat:
    """The chat of this update, registered (and active again if it was not) for a change."""
    return await _chat_of(update, context, register_chat)


async def known_chat(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Chat:
    """The stored chat, or one with the defaults that is not stored: for read-only commands,
    which must not enrol a chat (after /stop, or before it ever subscribed)."""
    return await _chat_of(update, context, chat_or_defaults)


async def _chat_of(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    lookup: Callable[[SessionFactory, int, str, str | None, str | None, Settings], Awaitable[Chat]],
) -> Chat:
    tg_chat = update.effective_chat
    assert tg_chat is not None
    user = update.effective_user
    d = deps(context)
    return await lookup(
        d.sessions,
        tg_chat.id,
        tg_chat.type,
        tg_chat.title,
        user.language_code if user is not None else None,
        d.settings,
    )


async def is_group_admin(
    context: ContextTypes.DEFAULT_TYPE,
    tg_chat: TelegramChat,
    user_id: int | None,
    sender_chat_id: int | None,
) -> bool:
    """True in private chats, and in groups for the group's administrators (anonymous ones too)."""
    if tg_chat.type == ChatType.PRIVATE:
        return True
    if sender_chat_id is not None and sender_chat_id == tg_chat.id:
        return True  # an anonymous administrator speaks as the group itself
    if user_id is None:
        return False
    try:
        member = await context.bot.get_chat_member(tg_chat.id, user_id)
    except TelegramError as exc:
        log.warning("getChatMember failed in chat %s: %s", tg_chat.id, exc)
        return False
    return member.status in (ChatMember.OWNER, ChatMember.ADMINISTRATOR)


async def may_change(update: Update, context: ContextTypes.DEFAULT_TYPE, chat: Chat) -> bool:
    """Whether the sender may change this chat's topics or settings; tells them if not."""
    tg_chat = update.effective_chat
    message = update.effective_message
    assert tg_chat is not None
    user = update.effective_user
    sender_chat = message.sender_chat if message is not None else None
    allowed = await is_group_admin(
        context,
        tg_chat,
        user.id if user is not None else None,
        sender_chat.id if sender_chat is not None else None,
    )
    if not allowed:
        await send(update, context, t(chat.language, "group_admins_only"))
    return allowed


async def chat_to_change(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Chat | None:
    """The chat, registered (active again after /stop or a block), if the sender may change
    it; None (and they are told) if not."""
    chat = await known_chat(update, context)
    if not await may_change(update, context, chat):
        return None
    return await current_chat(update, context)


# at most what a signed 64-bit column holds: Telegram ids and our row ids fit, nothing else
_NUMBER = re.compile(r"[0-9]{1,18}")


def parse_number(text: str) -> int | None:
    """An ASCII decimal number of at most 18 digits, or None (`²`, `٣`, 10**30 are not numbers)."""
    return int(text) if _NUMBER.fullmatch(text) else None


def callback_match(update: Update, pattern: re.Pattern[str]) -> re.Match[str] | None:
    """The button's data matched against the pattern its handler was registered with."""
    query = update.callback_query
    if query is None or query.data is None:
        return None
    return pattern.fullmatch(query.data)


def user_language(update: Update) -> Language:
    """The language of the person, before (or without) a stored chat."""
    user = update.effective_user
    return language_from_code(user.language_code if user is not None else None)


async def chat_for_button(
    update: Update, context: ContextTypes.DEFAULT_TYPE, *, register: bool = True
) -> Chat | None:
    """The chat a button changes (registered unless `register` is False), if the person who
    tapped may change it; None (and they are told) if not."""
    query = update.callback_query
    tg_chat = update.effective_chat
    assert query is not None and tg_chat is not None
    chat = await known_chat(update, context)
    if not await is_group_admin(context, tg_chat, query.from_user.id, None):
        await query.answer(t_plain(chat.language, "button_admins_only"), show_alert=True)
        return None
    return await current_chat(update, context) if register else chat


def message_of(update: Update) -> Message | None:
    """The message a button sits on, if Telegram still gives it."""
    query = update.callback_query
    message = query.message if query is not None else None
    return message if isinstance(message, Message) else None


async def drop_buttons(message: object) -> None:
    """The message without its buttons (editMessageText: see topics.unsubscribe_button)."""
    if not isinstance(message, Message) or not message.text:
        return
    try:
        await message.edit_text(message.text_html, reply_markup=None)
    except TelegramError as exc:  # an old message; the buttons answer politely anyway
        log.info("could not remove the broadcast buttons: %s", exc)
