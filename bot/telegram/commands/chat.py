"""The chat itself: /stop, membership changes, migrations, unknown commands, stale buttons and
the one error handler."""

from __future__ import annotations

import logging

from telegram import ChatMember, ChatMemberRestricted, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.i18n import language_from_code, t, t_plain
from bot.subscriptions import deactivate_chat, follow_migration, forget_chat, reactivate_chat
from bot.telegram import keyboards
from bot.telegram.commands.topics import popular_topic_buttons
from bot.telegram.common import (
    callback_match,
    chat_for_button,
    deps,
    drop_buttons,
    known_chat,
    may_change,
    message_of,
    send,
    user_language,
)

log = logging.getLogger(__name__)


async def stop_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Asks first: Confirm forgets the chat, Cancel keeps everything."""
    chat = await known_chat(update, context)
    if not await may_change(update, context, chat):
        return
    lang = chat.language
    await send(update, context, t(lang, "stop_confirm"), keyboards.stop_keyboard(lang))


async def stop_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Confirm or Cancel under /stop's question."""
    query = update.callback_query
    match = callback_match(update, keyboards.STOP)
    assert query is not None and match is not None
    chat = await chat_for_button(update, context, register=False)
    if chat is None:
        return
    lang = chat.language
    await drop_buttons(message_of(update))
    if match[1] == "no":
        await query.answer(t_plain(lang, "stop_cancelled"))
        await send(update, context, t(lang, "stop_cancelled"))
        return
    if chat.id is not None:  # a chat we never stored (or already forgot) has nothing to forget
        await forget_chat(deps(context).sessions, chat)
    await query.answer(t_plain(lang, "button_stopped"))
    await send(update, context, t(lang, "stopped"))


async def stale_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button no pattern knows: an old version, or data nobody sent."""
    query = update.callback_query
    assert query is not None
    lang: str = user_language(update)
    if update.effective_chat is not None:
        lang = (await known_chat(update, context)).language
    await query.answer(t_plain(lang, "button_stale"))


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


# --- errors -------------------------------------------------------------------------------


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Logs the failure (the log filter redacts the token) and tells the person."""
    log.error("update failed: %s", type(context.error).__name__, exc_info=context.error)
    if not isinstance(update, Update):
        return
    lang: str = user_language(update)
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
