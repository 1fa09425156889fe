"""Subscriber commands and buttons: parse the update, call the domain, reply in the chat's language.

Every reply goes to the chat (and forum topic) the command came from. In groups only the
group's administrators may change anything; read-only commands answer everyone.
"""

from __future__ import annotations

import asyncio
import logging
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
    ChatMemberRestricted,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    WebAppInfo,
)
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.config import Settings
from bot.db import SessionFactory
from bot.delivery.html import escape
from bot.digest.schedule import as_utc, chat_zone
from bot.i18n import Html, language_from_code, t, t_plain
from bot.models import Chat, Frequency, Release
from bot.subscriptions import (
    ChatInputError,
    chat_or_defaults,
    clean_user_text,
    deactivate_chat,
    follow_migration,
    forget_chat,
    list_followed,
    reactivate_chat,
    register_chat,
    set_frequency,
    set_language,
    set_paused,
    set_time,
    set_timezone,
    subscribe,
    unsubscribe,
    unsubscribe_by_id,
)
from bot.telegram import keyboards

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


def input_error_text(lang: str, exc: ChatInputError) -> str:
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


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def send_in_parts(
    update: Update, context: ContextTypes.DEFAULT_TYPE, blocks: list[str]
) -> None:
    """Sends blocks joined by newlines, split between blocks so each message fits."""
    part: list[str] = []
    size = 0
    for block in blocks:
        block_size = utf16_length(block) + 1
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


# --- read-only commands -------------------------------------------------------------------


def popular_topic_buttons(lang: str) -> InlineKeyboardMarkup | None:
    from bot.matching.catalogue import popular_topics

    labels = [
        (topic.key, topic.name_zh if lang == "zh" else topic.name_en) for topic in popular_topics()
    ]
    return keyboards.popular_topics_keyboard(labels)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    # in a private chat the person is the chat: /start enrols it; in a group any member may
    # say /start, so there it only greets
    private = update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE
    chat = await (current_chat if private else known_chat)(update, context)
    await send(update, context, t(chat.language, "start"), popular_topic_buttons(chat.language))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = await known_chat(update, context)
    text = t(chat.language, "help")
    user = update.effective_user
    if user is not None and user.id in deps(context).settings.admin_ids:
        text += t(chat.language, "help_admin")
    await send(update, context, text)


async def list_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = await known_chat(update, context)
    lang = chat.language
    followed = await list_followed(
        deps(context).sessions, chat, thread_of(update.effective_message)
    )
    if not followed:
        lines = [t(lang, "nothing_followed")]
    else:
        lines = [t(lang, "list_header", count=len(followed))]
        lines += [
            t(lang, "list_item", number=number, label=item.label)
            for number, item in enumerate(followed, start=1)
        ]
    await send_in_parts(update, context, [*lines, "", *schedule_lines(chat)])


async def search(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.matching.query import QueryError
    from bot.matching.service import search_releases

    chat = await known_chat(update, context)
    lang = chat.language
    try:
        text = clean_user_text(command_argument(update.effective_message), MAX_QUERY_LENGTH)
        if not text:
            raise ChatInputError("search_usage")
        releases = await search_releases(deps(context).sessions, text, limit=SEARCH_LIMIT)
    except ChatInputError as exc:
        await send(update, context, input_error_text(lang, exc))
        return
    except QueryError as exc:
        await send(update, context, t(lang, "query_invalid", reason=str(exc)))
        return
    if not releases:
        await send(update, context, t(lang, "search_none", query=shown(text)))
        return
    lines = [t(lang, "search_header", query=text)]
    for number, release in enumerate(releases, start=1):
        lines.append(
            t(
                lang,
                "search_item",
                number=number,
                release=release_link(release),
                date=local_time(chat, release.published_at, "%Y-%m-%d"),
            )
        )
    await send_in_parts(update, context, lines)


# --- subscriptions ------------------------------------------------------------------------


def subscribed_text(
    lang: str, label: str, created: bool, aliases: tuple[str, ...], example: Release | None
) -> str:
    if not created:
        return t(lang, "already_subscribed", label=label)
    lines = [t(lang, "subscribed", label=label)]
    if aliases:
        lines.append(t(lang, "subscribed_aliases", aliases=", ".join(aliases)))
    if example is not None:
        lines.append(t(lang, "subscribed_example", example=release_link(example)))
    else:
        lines.append(t(lang, "subscribed_no_example"))
    return "\n".join(lines)


async def subscribe_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.matching.query import QueryError

    chat = await chat_to_change(update, context)
    if chat is None:
        return
    lang = chat.language
    text = command_argument(update.effective_message)
    if not text:
        await send(update, context, t(lang, "subscribe_usage"))
        return
    d = deps(context)
    try:
        result = await subscribe(
            d.sessions,
            chat,
            thread_of(update.effective_message),
            text,
            d.settings.max_subscriptions,
            max_length=MAX_QUERY_LENGTH,
        )
    except ChatInputError as exc:
        await send(update, context, input_error_text(lang, exc))
        return
    except QueryError as exc:
        await send(update, context, t(lang, "query_invalid", reason=str(exc)))
        return
    await send(
        update,
        context,
        subscribed_text(
            lang, result.followed.label, result.created, result.aliases, result.example
        ),
    )


async def unsubscribe_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = await chat_to_change(update, context)
    if chat is None:
        return
    lang = chat.language
    d = deps(context)
    thread = thread_of(update.effective_message)
    text = command_argument(update.effective_message)
    if not text:
        followed = await list_followed(d.sessions, chat, thread)
        if not followed:
            await send(update, context, t(lang, "nothing_followed"))
        else:
            await send(
                update,
                context,
                t(lang, "unsubscribe_choose"),
                keyboards.unsubscribe_keyboard(lang, followed),
            )
        return
    removed = await unsubscribe(d.sessions, chat, thread, text)
    if removed is None:
        await send(update, context, t(lang, "unsubscribe_not_found", query=shown(text)))
    else:
        await send(update, context, t(lang, "unsubscribed", label=removed.label))


# --- settings -----------------------------------------------------------------------------


async def digest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    from bot.digest.service import queue_digest_now

    chat = await chat_to_change(update, context)
    if chat is None:
        return
    lang = chat.language
    d = deps(context)
    assert chat.id is not None
    outcome = await queue_digest_now(d.sessions, chat.id)
    if outcome.parts_queued > 0:
        d.wake_sender()
        text = t(
            lang, "digest_queued", count=outcome.releases, since=local_time(chat, outcome.since)
        )
    elif outcome.since is None:
        text = t(lang, "digest_empty_first")
    else:
        text = t(lang, "digest_empty", since=local_time(chat, outcome.since))
    await send(update, context, text)


async def _change_setting(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    usage_key: str,
    change: str,
) -> None:
    """/time, /timezone, /frequency, /lang: one argument, one domain call, the new schedule."""
    chat = await chat_to_change(update, context)
    if chat is None:
        return
    value = command_argument(update.effective_message)
    if not value:
        await send(update, context, t(chat.language, usage_key))
        return
    sessions = deps(context).sessions
    try:
        if change == "time":
            chat = await set_time(sessions, chat, value)
            lines = [
                t(
                    chat.language,
                    "time_set",
                    time=chat.digest_time.strftime("%H:%M"),
                    timezone=chat.timezone,
                )
            ]
        elif change == "timezone":
            chat = await set_timezone(sessions, chat, value)
            lines = [t(chat.language, "timezone_set", timezone=chat.timezone)]
        elif change == "frequency":
            chat = await set_frequency(sessions, chat, value)
            lines = [t(chat.language, f"frequency_{chat.frequency}")]
        else:
            chat = await set_language(sessions, chat, value)
            await send(update, context, t(chat.language, "lang_set"))
            return
    except ChatInputError as exc:
        await send(update, context, input_error_text(chat.language, exc))
        return
    await send(update, context, "\n".join([*lines, *schedule_lines(chat)]))


async def time_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _change_setting(update, context, "time_usage", "time")


async def timezone_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _change_setting(update, context, "timezone_usage", "timezone")


async def frequency_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _change_setting(update, context, "frequency_usage", "frequency")


async def lang_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _change_setting(update, context, "lang_usage", "lang")


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


async def stop_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = await known_chat(update, context)
    if not await may_change(update, context, chat):
        return
    if chat.id is not None:  # a chat we never stored has nothing to forget
        await forget_chat(deps(context).sessions, chat)
    await send(update, context, t(chat.language, "stopped"))


# --- everything else ----------------------------------------------------------------------


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command we do not know: answered in private, and in groups when addressed to us."""
    tg_chat = update.effective_chat
    message = update.effective_message
    if tg_chat is None or message is None or not message.text:
        return
    if tg_chat.type != ChatType.PRIVATE:
        first_word = message.text.split(maxsplit=1)[0]
        if (
            "@" not in first_word
            or first_word.split("@", 1)[1].casefold() != (context.bot.username or "").casefold()
        ):
            return  # meant for another bot, or for people: stay quiet in groups
    chat = await known_chat(update, context)
    await send(update, context, t(chat.language, "unknown_command"))


async def private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything that is not a command, in a private chat: say what the bot understands."""
    chat = await known_chat(update, context)
    await send(update, context, t(chat.language, "plain_text"))


async def chat_migrated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group became a supergroup: its settings follow it to the new chat id."""
    message = update.effective_message
    if message is None:
        return
    sessions = deps(context).sessions
    if message.migrate_to_chat_id:
        await follow_migration(sessions, message.chat.id, message.migrate_to_chat_id)
    elif message.migrate_from_chat_id:
        await follow_migration(sessions, message.migrate_from_chat_id, message.chat.id)


def _bot_is_in(member: ChatMember) -> bool:
    """Whether this status lets the bot receive and send in the chat."""
    if isinstance(member, ChatMemberRestricted):
        return member.is_member
    return member.status in (ChatMember.OWNER, ChatMember.ADMINISTRATOR, ChatMember.MEMBER)


async def bot_membership_changed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """my_chat_member: the bot was added to or removed from a group, blocked or unblocked.

    Removed or blocked: the chat is inactive at once (its queued messages are dropped).
    Back: active again with its subscriptions, if we kept it (not after /stop). A group
    that adds the bot is greeted like /start.
    """
    change = update.my_chat_member
    if change is None:
        return
    was_in, is_in = _bot_is_in(change.old_chat_member), _bot_is_in(change.new_chat_member)
    if was_in == is_in:
        return  # promoted, demoted or restricted: nothing changes for subscribers
    sessions = deps(context).sessions
    tg_chat = change.chat
    if not is_in:
        reason = f"the bot was removed or blocked ({change.new_chat_member.status})"
        await deactivate_chat(sessions, tg_chat.id, reason)
        return
    chat = await reactivate_chat(sessions, tg_chat.id)
    if tg_chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
        lang = (
            chat.language
            if chat is not None
            else language_from_code(change.from_user.language_code)
        )
        await send(update, context, t(lang, "start"), popular_topic_buttons(lang))


# --- buttons ------------------------------------------------------------------------------


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every inline button; admin buttons are handled in bot.telegram.admin."""
    from bot.telegram import admin

    query = update.callback_query
    assert query is not None
    callback = keyboards.parse_callback(query.data)
    tg_chat = update.effective_chat
    if callback is None or tg_chat is None:
        lang = "zh" if (query.from_user.language_code or "").startswith("zh") else "en"
        await query.answer(t_plain(lang, "button_stale"))
        return
    if callback.action in ("bc_ok", "bc_no"):
        await admin.broadcast_button(update, context, callback)
        return
    chat = await known_chat(update, context)
    lang = chat.language
    if not await is_group_admin(context, tg_chat, query.from_user.id, None):
        await query.answer(t_plain(lang, "button_admins_only"), show_alert=True)
        return
    chat = await current_chat(update, context)
    d = deps(context)
    message = query.message if isinstance(query.message, Message) else None
    thread = thread_of(message)
    if callback.action == "sub":
        await _subscribe_button(update, context, chat, thread, callback.argument)
        return
    removed = await unsubscribe_by_id(d.sessions, chat, int(callback.argument))
    if removed is None:
        await query.answer(t_plain(lang, "button_stale"))
        return
    # a callback answer is at most 200 characters: a long label is cut short
    await query.answer(t_plain(lang, "button_unsubscribed", label=shown(removed.label)))
    if message is not None:
        # editMessageText, not editMessageReplyMarkup: PTB adds the default parse_mode to the
        # latter, a parameter the Bot API does not define for it
        remaining = await list_followed(d.sessions, chat, thread)
        try:
            if remaining:
                await message.edit_text(
                    t(lang, "unsubscribe_choose"),
                    reply_markup=keyboards.unsubscribe_keyboard(lang, remaining),
                )
            else:
                await message.edit_text(t(lang, "unsubscribed", label=removed.label))
        except TelegramError as exc:  # the message is too old to edit: the answer is enough
            log.info("could not update the unsubscribe buttons: %s", exc)


async def _subscribe_button(
    update: Update, context: ContextTypes.DEFAULT_TYPE, chat: Chat, thread: int, key: str
) -> None:
    from bot.matching.catalogue import popular_topics
    from bot.matching.query import QueryError

    query = update.callback_query
    assert query is not None
    lang = chat.language
    topic = next((item for item in popular_topics() if item.key == key), None)
    if topic is None:
        await query.answer(t_plain(lang, "button_stale"))
        return
    d = deps(context)
    try:
        result = await subscribe(
            d.sessions, chat, thread, f"@{topic.key}", d.settings.max_subscriptions
        )
    except ChatInputError as exc:
        await query.answer(t_plain(lang, "button_stale"))
        await send(update, context, input_error_text(lang, exc))
        return
    except QueryError:
        await query.answer(t_plain(lang, "button_stale"))
        return
    label = result.followed.label
    answer_key = "button_subscribed" if result.created else "button_already_subscribed"
    await query.answer(t_plain(lang, answer_key, label=shown(label)))
    if result.created:
        await send(
            update, context, subscribed_text(lang, label, True, result.aliases, result.example)
        )


# --- errors -------------------------------------------------------------------------------


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Logs the failure (the log filter redacts the token) and tells the person."""
    log.error("update failed: %s", type(context.error).__name__, exc_info=context.error)
    if not isinstance(update, Update):
        return
    lang = "en"
    user = update.effective_user
    if user is not None and (user.language_code or "").startswith("zh"):
        lang = "zh"
    try:
        if update.effective_chat is not None:
            from bot.subscriptions import get_chat

            known = await get_chat(deps(context).sessions, update.effective_chat.id)
            if known is not None:
                lang = known.language
    except Exception:  # the database may be what failed
        log.debug("no chat language for the error reply", exc_info=True)
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(t_plain(lang, "error_generic"))
        elif update.effective_chat is not None:
            await send(update, context, t(lang, "error_generic"))
    except Exception:
        log.warning("could not tell the chat about the failure", exc_info=True)
