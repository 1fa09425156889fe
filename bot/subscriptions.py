"""Chats, the topics they follow and their settings: the domain behind the Telegram commands.

No Telegram here: the handlers pass plain values in and get rows or `ChatInputError` back.
A `ChatInputError` names the one-line message (a key of `bot.i18n`) that tells the person
what to do instead.
"""

from __future__ import annotations

import difflib
import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import Table, and_, delete, exists, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings, parse_hhmm
from bot.db import SessionFactory
from bot.delivery.outbox import CHAT, OUTBOX, fetch_rows
from bot.digest.schedule import as_utc, chat_zone
from bot.errors import KeyedError
from bot.i18n import Language, language_from_code
from bot.matching.query import MAX_QUERY_LENGTH
from bot.models import (
    Chat,
    Frequency,
    MessageKind,
    MessageState,
    OutboxMessage,
    Release,
    Subscription,
    Topic,
    metadata,
    utcnow,
)

log = logging.getLogger(__name__)
SUBSCRIPTION: Table = metadata.tables["subscription"]

_WEEKDAY_NAMES = tuple(
    frozenset({en, en[:3], zh, f"星期{zh}", f"週{zh}", f"周{zh}"})
    for en, zh in zip(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        "一二三四五六日",
        strict=True,
    )
)

# characters no one types on purpose: controls, bidi overrides and marks, unassigned, private
_REJECTED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


class ChatInputError(KeyedError):
    """Input the bot cannot use; `key` and `params` name the one-line reply in bot.i18n."""


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


def _new_chat(
    telegram_id: int, type: str, title: str | None, language_code: str | None, settings: Settings
) -> Chat:
    """A chat with the defaults, not stored."""
    return Chat(
        telegram_id=telegram_id,
        type=type,
        title=title if type != "private" else None,
        language=language_from_code(language_code),
        timezone=settings.default_timezone,
        digest_time=settings.digest_time,
    )


async def chat_or_defaults(
    sessions: SessionFactory,
    telegram_id: int,
    type: str,
    title: str | None,
    language_code: str | None,
    settings: Settings,
) -> Chat:
    """The stored chat, or one with the defaults that is not stored (read-only commands).

    Only a command that changes something registers a chat: /help or /list in a group that
    said /stop (or never subscribed) must not enrol it for digests and broadcasts.
    """
    stored = await get_chat(sessions, telegram_id)
    if stored is not None:
        return stored
    return _new_chat(telegram_id, type, title, language_code, settings)


async def register_chat(
    sessions: SessionFactory,
    telegram_id: int,
    type: str,
    title: str | None,
    language_code: str | None,
    settings: Settings,
) -> Chat:
    """The chat, created with the defaults on first change; an inactive one is active again."""
    from bot.digest.schedule import reschedule

    async with sessions() as s:
        chat = (await s.exec(select(Chat).where(Chat.telegram_id == telegram_id))).first()
        if chat is not None:
            if chat.active and chat.type == type:
                return chat
            if not chat.active:
                reschedule(chat, utcnow())
            chat.active = True
            chat.type = type
            chat.updated_at = utcnow()
            s.add(chat)
            await s.commit()
            return chat
        chat = _new_chat(telegram_id, type, title, language_code, settings)
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


async def mark_chat_gone(session: AsyncSession, chat_id: int, reason: str) -> int:
    """In the caller's transaction: the chat (Chat.id) is inactive and its unsent messages
    are dropped; returns how many were dropped. Subscriptions stay for its return."""
    await session.exec(
        update(CHAT).where(CHAT.c.id == chat_id).values(active=False, updated_at=utcnow())
    )
    result = await session.exec(
        update(OUTBOX)
        .where(
            OUTBOX.c.chat_id == chat_id,
            OUTBOX.c.state.in_([MessageState.queued.value, MessageState.sending.value]),
        )
        .values(state=MessageState.dropped.value, last_error=reason, claimed_until=None)
    )
    return int(result.rowcount or 0)


async def deactivate_chat(sessions: SessionFactory, telegram_id: int, reason: str) -> bool:
    """The bot was blocked or removed: no more digests or broadcasts; False if unknown."""
    async with sessions() as s:
        chat = (await s.exec(select(Chat).where(Chat.telegram_id == telegram_id))).first()
        if chat is None or chat.id is None:
            return False
        await mark_chat_gone(s, chat.id, reason)
        await s.commit()
        return True


async def reactivate_chat(sessions: SessionFactory, telegram_id: int) -> Chat | None:
    """The bot was unblocked or added again: the chat is active with its subscriptions.

    None for a chat we do not keep (never registered, or it said /stop): it stays unknown.
    """
    from bot.digest.schedule import reschedule

    async with sessions() as s:
        chat = (await s.exec(select(Chat).where(Chat.telegram_id == telegram_id))).first()
        if chat is None or chat.active:
            return chat
        now = utcnow()
        chat.active = True
        chat.updated_at = now
        chat.next_send_at = None
        reschedule(chat, now)  # the next digest from now, not the ones missed while away
        s.add(chat)
        await s.commit()
        return chat


async def migrate_chat(
    session: AsyncSession, old_telegram_id: int, new_telegram_id: int
) -> int | None:
    """In the caller's transaction: a group became a supergroup; returns the chat's Chat.id.

    The one rule, whoever learns of it first (the service messages in either chat, or a send
    answered with ChatMigrated): the old group's row takes the new id and keeps its settings.
    A row already made for the new id (a command from the supergroup came first) is merged
    into it: its subscriptions and queued messages move over, then it is deleted. None when
    neither id is known.
    """
    found = await fetch_rows(
        session,
        select(CHAT.c.id, CHAT.c.telegram_id, CHAT.c.title).where(
            CHAT.c.telegram_id.in_([old_telegram_id, new_telegram_id])
        ),
    )
    old = next((row for row in found if row.telegram_id == old_telegram_id), None)
    new = next((row for row in found if row.telegram_id == new_telegram_id), None)
    if old is None:
        return new.id if new is not None else None  # already migrated, or never known
    title = old.title
    if new is not None:
        title = new.title or title
        # subscriptions the old row already has would break the unique constraint: drop them
        other = SUBSCRIPTION.alias("other")
        await session.exec(
            delete(SUBSCRIPTION).where(
                SUBSCRIPTION.c.chat_id == new.id,
                exists().where(
                    other.c.chat_id == old.id,
                    other.c.thread_id == SUBSCRIPTION.c.thread_id,
                    other.c.topic_id == SUBSCRIPTION.c.topic_id,
                ),
            )
        )
        await session.exec(
            update(SUBSCRIPTION).where(SUBSCRIPTION.c.chat_id == new.id).values(chat_id=old.id)
        )
        # keys name the deleted row's id, which SQLite may give to the next new chat
        await session.exec(
            update(OUTBOX).where(OUTBOX.c.chat_id == new.id).values(chat_id=old.id, dedup_key=None)
        )
        await session.exec(delete(CHAT).where(CHAT.c.id == new.id))
    await session.exec(
        update(CHAT)
        .where(CHAT.c.id == old.id)
        .values(
            telegram_id=new_telegram_id,
            type="supergroup",
            title=title,
            active=True,
            next_send_at=None,
            updated_at=utcnow(),
        )
    )
    log.info("chat %s migrated to a supergroup", old.id)
    return int(old.id)


async def move_thread_to_main(session: AsyncSession, chat_id: int, thread_id: int) -> None:
    """In the caller's transaction: a forum topic (thread_id) of the chat (Chat.id) is closed or
    deleted. Its subscriptions and unsent messages move to the group's main thread, preceded
    (the first time only) by a one-line note saying so."""
    from bot.delivery.outbox import enqueue
    from bot.i18n import t

    in_thread = and_(OUTBOX.c.chat_id == chat_id, OUTBOX.c.thread_id == thread_id)
    unsent = OUTBOX.c.state.in_([MessageState.queued.value, MessageState.sending.value])
    found = await fetch_rows(
        session,
        select(func.min(OUTBOX.c.not_before), CHAT.c.language)
        .select_from(CHAT.outerjoin(OUTBOX, and_(in_thread, unsent)))
        .where(CHAT.c.id == chat_id)
        .group_by(CHAT.c.language),
    )
    if not found:
        return
    first_due, language = found[0]
    other = SUBSCRIPTION.alias("other")
    await session.exec(
        delete(SUBSCRIPTION).where(
            SUBSCRIPTION.c.chat_id == chat_id,
            SUBSCRIPTION.c.thread_id == thread_id,
            exists().where(
                other.c.chat_id == chat_id,
                other.c.thread_id == 0,
                other.c.topic_id == SUBSCRIPTION.c.topic_id,
            ),
        )
    )
    await session.exec(
        update(SUBSCRIPTION)
        .where(SUBSCRIPTION.c.chat_id == chat_id, SUBSCRIPTION.c.thread_id == thread_id)
        .values(thread_id=0)
    )
    await session.exec(update(OUTBOX).where(in_thread, unsent).values(thread_id=0))
    # a millisecond before the first moved message: the note is read before what it explains
    note_at = first_due - timedelta(milliseconds=1) if first_due is not None else utcnow()
    await enqueue(
        session,
        chat_id,
        t(language, "topic_closed"),
        kind=MessageKind.notice,
        dedup_key=f"topic-gone:{chat_id}:{thread_id}",
        not_before=as_utc(note_at),
    )
    log.info(
        "forum topic %s of chat %s is gone; its digests go to the main thread", thread_id, chat_id
    )


async def follow_migration(
    sessions: SessionFactory, old_telegram_id: int, new_telegram_id: int
) -> None:
    """`migrate_chat` in a transaction of its own (the Telegram service messages)."""
    async with sessions() as s:
        await migrate_chat(s, old_telegram_id, new_telegram_id)
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


async def subscribe(
    sessions: SessionFactory,
    chat: Chat,
    thread_id: int,
    text: str,
    max_subscriptions: int,
    *,
    max_length: int = MAX_QUERY_LENGTH,
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
            raise ChatInputError("too_many_subscriptions", count=max_subscriptions)
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
    sessions: SessionFactory, text: str, *, max_length: int = MAX_QUERY_LENGTH, limit: int = 3
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


class AmbiguousTimezone(ChatInputError):
    """A place that names no zone exactly: `candidates` are the closest zones, to choose from."""

    def __init__(self, value: str, candidates: list[str]) -> None:
        super().__init__("timezone_choose", value=value)
        self.candidates = candidates


# the few places a Chinese-speaking subscriber is likely to type, as IANA zones
_CHINESE_PLACES: dict[str, str] = {
    "香港": "Asia/Hong_Kong",
    "澳門": "Asia/Macau",
    "澳门": "Asia/Macau",
    "台北": "Asia/Taipei",
    "臺北": "Asia/Taipei",
    "台灣": "Asia/Taipei",
    "臺灣": "Asia/Taipei",
    "台湾": "Asia/Taipei",
    "北京": "Asia/Shanghai",
    "上海": "Asia/Shanghai",
    "深圳": "Asia/Shanghai",
    "廣州": "Asia/Shanghai",
    "广州": "Asia/Shanghai",
    "中國": "Asia/Shanghai",
    "中国": "Asia/Shanghai",
    "東京": "Asia/Tokyo",
    "东京": "Asia/Tokyo",
    "日本": "Asia/Tokyo",
    "首爾": "Asia/Seoul",
    "首尔": "Asia/Seoul",
    "新加坡": "Asia/Singapore",
    "吉隆坡": "Asia/Kuala_Lumpur",
    "曼谷": "Asia/Bangkok",
    "馬尼拉": "Asia/Manila",
    "马尼拉": "Asia/Manila",
    "杜拜": "Asia/Dubai",
    "迪拜": "Asia/Dubai",
    "倫敦": "Europe/London",
    "伦敦": "Europe/London",
    "英國": "Europe/London",
    "英国": "Europe/London",
    "巴黎": "Europe/Paris",
    "柏林": "Europe/Berlin",
    "紐約": "America/New_York",
    "纽约": "America/New_York",
    "洛杉磯": "America/Los_Angeles",
    "洛杉矶": "America/Los_Angeles",
    "三藩市": "America/Los_Angeles",
    "舊金山": "America/Los_Angeles",
    "旧金山": "America/Los_Angeles",
    "多倫多": "America/Toronto",
    "多伦多": "America/Toronto",
    "溫哥華": "America/Vancouver",
    "温哥华": "America/Vancouver",
    "悉尼": "Australia/Sydney",
    "雪梨": "Australia/Sydney",
    "墨爾本": "Australia/Melbourne",
    "墨尔本": "Australia/Melbourne",
    "奧克蘭": "Pacific/Auckland",
    "奥克兰": "Pacific/Auckland",
}
# the continents' folders: "Hongkong" and "GB" are old aliases of zones listed under them
_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)
MAX_TIMEZONE_CHOICES = 6


def _place_key(text: str) -> str:
    """`Hong Kong`, `hong_kong`, `HONG-KONG` -> `hongkong`."""
    return "".join(ch for ch in text.casefold() if ch not in " _-'.")


@lru_cache(maxsize=1)
def _zones_by_city() -> dict[str, list[str]]:
    """Zones by the place key of their last part (`kong` no, `hongkong` yes), area zones first."""
    by_city: dict[str, list[str]] = {}
    for name in sorted(_timezones_by_folded_name().values()):
        if name.startswith(("posix/", "right/")):
            continue
        by_city.setdefault(_place_key(name.rsplit("/", 1)[-1]), []).append(name)
    for names in by_city.values():
        names.sort(key=lambda name: (name.split("/", 1)[0] not in _AREAS, name))
    return by_city


def resolve_timezone(text: str) -> str:
    """An IANA name (any case, spaces for underscores), a city (`London`, `hong kong`) or a
    common Chinese place name (`香港`). ChatInputError if nothing is close;
    AmbiguousTimezone with the closest zones if several are."""
    wanted = "_".join(text.strip().split())
    value = text.strip()
    name = _timezones_by_folded_name().get(wanted.casefold()) or _CHINESE_PLACES.get(wanted)
    if name is None:
        key = _place_key(wanted.rsplit("/", 1)[-1])
        by_city = _zones_by_city()
        found = by_city.get(key, [])
        in_areas = [zone for zone in found if zone.split("/", 1)[0] in _AREAS]
        if len(in_areas) == 1 or (not in_areas and len(found) == 1):
            name = (in_areas or found)[0]
        elif len(key) >= 3:
            close = in_areas or [
                zones[0] for city, zones in sorted(by_city.items()) if city.startswith(key)
            ]
            if not close:
                close = [
                    by_city[city][0]
                    for city in difflib.get_close_matches(key, by_city, n=MAX_TIMEZONE_CHOICES)
                ]
            if close:
                raise AmbiguousTimezone(value, close[:MAX_TIMEZONE_CHOICES])
    if name is None:
        raise ChatInputError("timezone_invalid", value=value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChatInputError("timezone_invalid", value=value) from None
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
    """`monday`, `mon`, `一`, `星期一`, `週一` or `0`..`6` -> 0 (Monday)..6; else ChatInputError."""
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
