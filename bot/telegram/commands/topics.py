"""Topics: /start, /help, /list, /search, /subscribe, /unsubscribe, /whoami and their buttons."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.i18n import t, t_plain
from bot.models import Release
from bot.subscriptions import (
    ChatInputError,
    clean_user_text,
    list_followed,
    subscribe,
    unsubscribe,
    unsubscribe_by_id,
)
from bot.telegram import keyboards
from bot.telegram.common import (
    MAX_QUERY_LENGTH,
    SEARCH_LIMIT,
    argument_or_usage,
    callback_match,
    chat_for_button,
    chat_to_change,
    command_argument,
    current_chat,
    deps,
    input_error_text,
    known_chat,
    local_time,
    message_of,
    release_link,
    schedule_lines,
    send,
    send_in_parts,
    shown,
    thread_of,
)

log = logging.getLogger(__name__)

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
    except (ChatInputError, QueryError) as exc:
        await send(update, context, input_error_text(lang, exc))
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
    text = await argument_or_usage(update, context, lang, "subscribe_usage")
    if text is None:
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
    except (ChatInputError, QueryError) as exc:
        await send(update, context, input_error_text(lang, exc))
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


async def subscribe_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A popular topic's button (/start): follows it here."""
    from bot.matching.catalogue import popular_topics
    from bot.matching.query import QueryError

    query = update.callback_query
    match = callback_match(update, keyboards.SUBSCRIBE)
    assert query is not None and match is not None
    chat = await chat_for_button(update, context)
    if chat is None:
        return
    lang = chat.language
    topic = next((item for item in popular_topics() if item.key == match[1]), None)
    if topic is None:
        await query.answer(t_plain(lang, "button_stale"))
        return
    d = deps(context)
    thread = thread_of(message_of(update))
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


async def unsubscribe_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """One subscription's button (/unsubscribe without an argument): stops following it."""
    query = update.callback_query
    match = callback_match(update, keyboards.UNSUBSCRIBE)
    assert query is not None and match is not None
    chat = await chat_for_button(update, context)
    if chat is None:
        return
    lang = chat.language
    d = deps(context)
    message = message_of(update)
    thread = thread_of(message)
    removed = await unsubscribe_by_id(d.sessions, chat, int(match[1]))
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


async def whoami_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The person's and the chat's Telegram ids: what an operator puts in ADMIN_IDS."""
    chat = await known_chat(update, context)
    user = update.effective_user
    tg_chat = update.effective_chat
    assert tg_chat is not None
    key = "whoami" if user is not None else "whoami_anonymous"
    await send(update, context, t(chat.language, key, user=user.id if user else 0, chat=tg_chat.id))
