"""When each chat's next digest is due: local time and timezone to a UTC moment, with zoneinfo.

A local digest time that does not exist on a day (the spring-forward gap) is sent at the first
valid instant after the gap; one that happens twice (autumn) is sent once, at the first (fold=0).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.models import Chat, Frequency

log = logging.getLogger(__name__)


class Schedule(Protocol):
    """What the schedule reads of a chat: a Chat row, or the plain row the tick loads."""

    @property
    def id(self) -> int | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def digest_time(self) -> time: ...
    @property
    def digest_weekday(self) -> int: ...
    @property
    def frequency(self) -> str: ...
    @property
    def last_digest_at(self) -> datetime | None: ...


# a weekly digest is at most 7 days away; one more day covers a local date behind UTC's
_DAYS_TO_SEARCH = 9


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime (SQLite without tz support) is taken as UTC."""
    if moment.tzinfo is UTC:  # nearly always: what the database and utcnow() give
        return moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def chat_zone(chat: Schedule) -> ZoneInfo:
    """The chat's timezone; UTC if the stored name is unknown (the Telegram layer validates it)."""
    try:
        return ZoneInfo(chat.timezone)
    # OSError: a folder of the tz database ("Asia") raises IsADirectoryError
    except (ZoneInfoNotFoundError, ValueError, OSError):
        log.warning("chat %s has an unknown timezone %r; using UTC", chat.id, chat.timezone)
        return ZoneInfo("UTC")


def _offset(moment_utc: datetime, zone: ZoneInfo) -> timedelta:
    offset = moment_utc.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset
    return offset


def local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC moment of wall-clock `at` on `day` in `zone`.

    Ambiguous (repeated) wall times give the first occurrence; wall times inside a gap give
    the instant the gap ends (the first valid local time after it).
    """
    wall = datetime.combine(day, at.replace(tzinfo=None))
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=0 uses the offset before the change, fold=1 the one after; the change
    # itself lies between the two readings, found by bisection on whole seconds.
    later_offset = wall.replace(tzinfo=zone, fold=1).utcoffset()
    low = int(wall.replace(tzinfo=zone, fold=1).timestamp())  # before the change
    high = int(first.timestamp())  # at or after the change
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(datetime.fromtimestamp(middle, UTC), zone) == later_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _is_digest_day(chat: Schedule, day: date) -> bool:
    if chat.frequency == Frequency.weekly:
        return day.weekday() == chat.digest_weekday % 7
    return True


def next_digest_at(chat: Schedule, after: datetime) -> datetime | None:
    """The first digest moment strictly after `after`, in UTC; None for `instant` chats."""
    if chat.frequency not in (Frequency.daily, Frequency.weekly):
        return None
    zone = chat_zone(chat)
    after = as_utc(after)
    day = after.astimezone(zone).date() - timedelta(days=1)
    for _ in range(_DAYS_TO_SEARCH):
        if _is_digest_day(chat, day):
            moment = local_to_utc(day, chat.digest_time, zone)
            if moment > after:
                return moment
        day += timedelta(days=1)
    raise AssertionError(f"no digest moment within {_DAYS_TO_SEARCH} days of {after}")


def period_start(
    chat: Schedule, due_at: datetime, last_digest_at: datetime | None = None
) -> datetime | None:
    """Where the period a digest sent at `due_at` covers begins: the chat's last digest (or
    `last_digest_at`, a forum topic's own: bot.digest.service.thread_window).

    None for a chat that never had one. Every attempt to send the same period (two workers,
    a retry, /digest racing the schedule) sees the same start, so the outbox dedup key
    built on it lets only one through; once a digest is queued the start moves on.
    """
    last = last_digest_at or chat.last_digest_at
    if last is None:
        return None
    return min(as_utc(last), as_utc(due_at))


def reschedule(chat: Chat, now: datetime) -> None:
    """Sets chat.next_digest_at after a settings change (/time, /timezone, /frequency, /resume)."""
    chat.next_digest_at = next_digest_at(chat, now)
