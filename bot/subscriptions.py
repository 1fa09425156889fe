"""Chats, the topics they follow and their settings: the domain behind the Telegram commands.

No Telegram here: the handlers pass plain values in and get rows or `ChatInputError` back.
A `ChatInputError` names the one-line message (a key of `bot.i18n`) that tells the person
what to do instead.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.config import Settings, parse_hhmm
from bot.db import SessionFactory
from bot.digest.schedule import chat_zone
from bot.i18n import Language, language_from_code
from bot.models import Chat, Frequency, OutboxMessage, Release, Subscription, Topic, utcnow

_WEEKDAY_NAMES = tuple(
    frozenset({en, en[:3], f"星期{zh}", f"週{zh}", f"周{zh}"})
    for en, zh in zip(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        "一二三四五六日",
        strict=True,
    )
)

# characters no one types on purpose: controls, bidi overrides and marks, unassigned, private
_REJECTED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


class ChatInputError(ValueError):
    """Input the bot cannot use; `key` and `params` name the one-line reply in bot.i18n."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


@dataclass(frozen=True)
class Followed:
    """A subscription with the topic it follows."""

    subscription: Subscription
    topic: Topic

    @property
    def label(self) -> str:
        return self.topic.label or self.subscription.query_text


@dataclass(frozen=True)
class SubscribeResult:
    followed: Followed
    created: bool  # False: the chat (thread) already followed this topic
    aliases: tuple[str, ...]
    example: Release | None  # a recent release it would have matched


def clean_user_text(text: str, max_length: int) -> str:
    """`text` with its whitespace collapsed; ChatInputError if too long or with odd characters."""
    cleaned = " ".join(text.split())
    if len(cleaned) > max_length:
        raise ChatInputError("query_too_long", length=len(cleaned), limit=max_length)
    if any(unicodedata.category(ch) in _REJECTED_CATEGORIES for ch in cleaned):
        raise ChatInputError("query_bad_characters")
    return cleaned


# --- chats --------------------------------------------------------------------------------


async def get_chat(sessions: SessionFactory, telegram_id: int) -> Chat | None:
    async with sessions() as s:
        return (await s.exec(select(Chat).where(Chat.telegram_id == telegram_id))).first()


async def register_chat(
    sessions: SessionFactory,
    telegram_id: int,
    type: str,
    title: str | None,
    language_code: str | None,
    settings: Settings,
) -> Chat:
    """The chat, created with the defaults on first contact; an inactive one is active again."""
    from bot.digest.schedule import reschedule

    async with sessions() as s:
        chat = (await s.exec(select(Chat).where(Chat.telegram_id == telegram_id))).first()
        if chat is not None:
            if chat.active and chat.type == type:
                return chat
            chat.active = True
            chat.type = type
            chat.updated_at = utcnow()
            s.add(chat)
            await s.commit()
            return chat
        chat = Chat(
            telegram_id=telegram_id,
            type=type,
            title=title if type != "private" else None,
            language=language_from_code(language_code),
            timezone=settings.default_timezone,
            digest_time=settings.digest_time,
        )
        reschedule(chat, utcnow())
        s.add(chat)
        try:
            await s.commit()
        except IntegrityError:  # another update of the same chat registered it first
            await s.rollback()
            return (await s.exec(select(Chat).where(Chat.telegram_id == telegram_id))).one()
        return chat


async def forget_chat(sessions: SessionFactory, chat: Chat) -> None:
    """/stop: deletes the chat's subscriptions, queued messages and settings."""
    async with sessions() as s:
        await s.exec(delete(OutboxMessage).where(col(OutboxMessage.chat_id) == chat.id))
        await s.exec(delete(Subscription).where(col(Subscription.chat_id) == chat.id))
        await s.exec(delete(Chat).where(col(Chat.id) == chat.id))
        await s.commit()


async def migrate_chat(
    sessions: SessionFactory, old_telegram_id: int, new_telegram_id: int
) -> None:
    """A group became a supergroup: the chat keeps its settings under the new id."""
    async with sessions() as s:
        chat = (await s.exec(select(Chat).where(Chat.telegram_id == old_telegram_id))).first()
        taken = (await s.exec(select(Chat).where(Chat.telegram_id == new_telegram_id))).first()
        if chat is None or taken is not None:
            return
        chat.telegram_id = new_telegram_id
        chat.type = "supergroup"
        chat.updated_at = utcnow()
        s.add(chat)
        await s.commit()


# --- subscriptions ------------------------------------------------------------------------


async def list_followed(
    sessions: SessionFactory, chat: Chat, thread_id: int | None = None
) -> list[Followed]:
    """The chat's subscriptions (only those of `thread_id` when given), oldest first."""
    stmt = (
        select(Subscription, Topic)
        .join(Topic, col(Topic.id) == col(Subscription.topic_id))
        .where(Subscription.chat_id == chat.id)
        .order_by(col(Subscription.created_at), col(Subscription.id))
    )
    if thread_id is not None:
        stmt = stmt.where(Subscription.thread_id == thread_id)
    async with sessions() as s:
        return [Followed(sub, topic) for sub, topic in (await s.exec(stmt)).all()]


async def list_subscriptions(
    sessions: SessionFactory, chat: Chat, thread_id: int | None = None
) -> list[Subscription]:
    return [f.subscription for f in await list_followed(sessions, chat, thread_id)]


async def subscribe(
    sessions: SessionFactory,
    chat: Chat,
    thread_id: int,
    text: str,
    max_subscriptions: int,
    *,
    max_length: int = 200,
) -> SubscribeResult:
    """Follows the topic `text` in the chat (forum topic `thread_id`, 0 for the chat itself).

    Raises ChatInputError for text the bot will not take, QueryError (one line) for a query
    the query language rejects.
    """
    from bot.matching.query import parse_query
    from bot.matching.service import get_or_create_topic, match_topic_recent

    cleaned = clean_user_text(text, max_length)
    if not cleaned:
        raise ChatInputError("subscribe_usage")
    parsed = parse_query(cleaned, max_length=max_length)
    async with sessions() as s:
        topic = await get_or_create_topic(s, parsed)
        await s.commit()
        same_subscription = select(Subscription).where(
            Subscription.chat_id == chat.id,
            Subscription.thread_id == thread_id,
            Subscription.topic_id == topic.id,
        )
        existing = (await s.exec(same_subscription)).first()
        if existing is not None:
            return SubscribeResult(Followed(existing, topic), False, parsed.aliases, None)
        count = (
            await s.exec(
                select(func.count())
                .select_from(Subscription)
                .where(Subscription.chat_id == chat.id)
            )
        ).one()
        if count >= max_subscriptions:
            raise ChatInputError("too_many_subscriptions", limit=max_subscriptions)
        assert chat.id is not None and topic.id is not None
        subscription = Subscription(
            chat_id=chat.id, thread_id=thread_id, topic_id=topic.id, query_text=cleaned
        )
        s.add(subscription)
        try:
            await s.commit()
        except IntegrityError:  # the same subscription made twice at once
            await s.rollback()
            existing = (await s.exec(same_subscription)).one()
            return SubscribeResult(Followed(existing, topic), False, parsed.aliases, None)
    assert topic.id is not None
    recent = await match_topic_recent(sessions, topic.id, days=30)
    return SubscribeResult(
        Followed(subscription, topic), True, parsed.aliases, recent[0] if recent else None
    )


@dataclass(frozen=True)
class SubscriptionPreview:
    """What following `text` would mean, before anyone follows it (the Mini App shows it)."""

    label: str
    aliases: tuple[str, ...]
    recent: list[Release]  # newest stored releases it matches


async def preview_subscription(
    sessions: SessionFactory, text: str, *, max_length: int = 200, limit: int = 3
) -> SubscriptionPreview:
    """The same checks as `subscribe` (ChatInputError, QueryError), then recent matches."""
    from bot.matching.query import parse_query
    from bot.matching.service import search_releases

    cleaned = clean_user_text(text, max_length)
    if not cleaned:
        raise ChatInputError("subscribe_usage")
    parsed = parse_query(cleaned, max_length=max_length)
    recent = await search_releases(sessions, cleaned, limit=limit)
    return SubscriptionPreview(parsed.label, parsed.aliases, recent)


async def unsubscribe(
    sessions: SessionFactory, chat: Chat, thread_id: int, text_or_number: str
) -> Followed | None:
    """Stops following: `N` is the number /list shows, anything else the query; None if no match."""
    from bot.matching.query import QueryError, parse_query

    wanted = " ".join(text_or_number.split())
    followed = await list_followed(sessions, chat, thread_id)
    target: Followed | None = None
    if wanted.isascii() and wanted.isdigit():  # not "²": int() would refuse it
        number = int(wanted)
        if 1 <= number <= len(followed):
            target = followed[number - 1]
    else:
        try:
            canonical: str | None = parse_query(wanted).canonical
        except QueryError:
            canonical = None
        folded = wanted.casefold()
        for item in followed:
            if item.topic.query == canonical or item.subscription.query_text.casefold() == folded:
                target = item
                break
    if target is None:
        return None
    await _delete_subscription(sessions, target.subscription)
    return target


async def unsubscribe_by_id(
    sessions: SessionFactory, chat: Chat, subscription_id: int
) -> Followed | None:
    """An unsubscribe button: None when that subscription is already gone."""
    for item in await list_followed(sessions, chat):
        if item.subscription.id == subscription_id:
            await _delete_subscription(sessions, item.subscription)
            return item
    return None


async def _delete_subscription(sessions: SessionFactory, subscription: Subscription) -> None:
    async with sessions() as s:
        await s.exec(delete(Subscription).where(col(Subscription.id) == subscription.id))
        await s.commit()


# --- settings -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _timezones_by_folded_name() -> dict[str, str]:
    # "localtime" is the server's own zone (a symlink in tzdata), "Factory" a placeholder
    not_places = {"localtime", "Factory", "posixrules", "posix/localtime"}
    return {name.casefold(): name for name in available_timezones() - not_places}


def timezone_names() -> list[str]:
    """Every IANA zone name /timezone accepts, sorted (the Mini App's searchable list)."""
    return sorted(_timezones_by_folded_name().values())


def resolve_timezone(text: str) -> str:
    """An IANA name, found case-insensitively (`asia/hong_kong`); ChatInputError if unknown."""
    wanted = "_".join(text.strip().split())
    name = _timezones_by_folded_name().get(wanted.casefold())
    if name is None:
        raise ChatInputError("timezone_invalid", value=text.strip())
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChatInputError("timezone_invalid", value=text.strip()) from None
    return name


async def _update_chat(sessions: SessionFactory, chat: Chat, **changes: object) -> Chat:
    """Applies `changes` to the stored chat, reschedules its digest, returns the fresh row."""
    from bot.digest.schedule import reschedule

    async with sessions() as s:
        stored = await s.get(Chat, chat.id)
        if stored is None:
            raise LookupError(f"chat {chat.id} is gone")
        for name, value in changes.items():
            setattr(stored, name, value)
        now = utcnow()
        stored.updated_at = now
        reschedule(stored, now)
        s.add(stored)
        await s.commit()
        return stored


async def set_time(sessions: SessionFactory, chat: Chat, text: str) -> Chat:
    try:
        at = parse_hhmm(text)
    except ValueError:
        raise ChatInputError("time_invalid", value=text.strip()) from None
    return await _update_chat(sessions, chat, digest_time=at)


async def set_timezone(sessions: SessionFactory, chat: Chat, text: str) -> Chat:
    return await _update_chat(sessions, chat, timezone=resolve_timezone(text))


def parse_weekday(text: str) -> int:
    """`monday`, `mon`, `星期一`, `週一` or `0`..`6` -> 0 (Monday)..6; ChatInputError otherwise."""
    wanted = text.strip().casefold()
    for number, names in enumerate(_WEEKDAY_NAMES):
        if wanted in names or wanted == str(number):
            return number
    raise ChatInputError("weekday_invalid", value=text.strip())


async def set_frequency(
    sessions: SessionFactory, chat: Chat, text: str, weekday: int | None = None
) -> Chat:
    """`daily`, `weekly [DAY]` or `instant`; `weekday` (0 = Monday) picks the weekly day too."""
    words = text.split()
    value = words[0].casefold() if words else ""
    if value not in {f.value for f in Frequency} or len(words) > 2:
        raise ChatInputError("frequency_invalid", value=text.strip())
    if len(words) == 2:
        if value != Frequency.weekly:
            raise ChatInputError("frequency_invalid", value=text.strip())
        weekday = parse_weekday(words[1])
    if weekday is not None and weekday not in range(7):
        raise ChatInputError("weekday_invalid", value=str(weekday))
    changes: dict[str, object] = {"frequency": value}
    if value == Frequency.weekly and weekday is not None:
        changes["digest_weekday"] = weekday
    elif value == Frequency.weekly and chat.frequency != Frequency.weekly:
        # the first weekly digest falls on the weekday the person chose weekly
        changes["digest_weekday"] = datetime.now(chat_zone(chat)).weekday()
    return await _update_chat(sessions, chat, **changes)


async def set_paused(sessions: SessionFactory, chat: Chat, paused: bool) -> tuple[Chat, bool]:
    """Pauses or resumes; the bool says whether anything changed."""
    if chat.paused == paused:
        return chat, False
    return await _update_chat(sessions, chat, paused=paused), True


async def set_language(sessions: SessionFactory, chat: Chat, text: str) -> Chat:
    value = text.strip().casefold()
    language: Language
    if value in {"en", "english", "英文"}:
        language = "en"
    elif value.startswith("zh") or value in {"中文", "chinese", "繁體", "繁體中文"}:
        language = "zh"
    else:
        raise ChatInputError("lang_usage")
    return await _update_chat(sessions, chat, language=language)
