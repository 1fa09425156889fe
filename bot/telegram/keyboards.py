"""Inline keyboards and their callback data: small (<= 64 bytes) and versioned (`v1:...`).

A button lives as long as the message that carries it, so every payload names its version;
a payload no pattern here matches (another version, a forged one) gets a polite answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import t_plain
from bot.subscriptions import Followed

VERSION = "v1"
MAX_CALLBACK_BYTES = 64
BUTTON_LABEL_LIMIT = 40  # characters; Telegram shows little more on a phone

# one pattern per kind of button, each registered with its own CallbackQueryHandler; numbers
# are ASCII digits that fit a 64-bit column, so int() of a match never fails; \Z because
# PTB matches from the start only
_ID = r"([0-9]{1,18})"
SUBSCRIBE = re.compile(rf"{VERSION}:sub:([a-z0-9_-]{{1,40}})\Z")
UNSUBSCRIBE = re.compile(rf"{VERSION}:unsub:{_ID}\Z")
BROADCAST = re.compile(rf"{VERSION}:bc:(ok|no):{_ID}\Z")
STOP = re.compile(rf"{VERSION}:stop:(ok|no)\Z")
MANAGE = re.compile(rf"{VERSION}:manage\Z")  # bot.digest.compose.manage_markup sends it
TIMEZONE = re.compile(rf"{VERSION}:tz:([A-Za-z0-9_+\-/]{{1,56}})\Z")


def _pack(*parts: str) -> str | None:
    data = ":".join((VERSION, *parts))
    return data if len(data.encode()) <= MAX_CALLBACK_BYTES else None


def subscribe_data(catalogue_key: str) -> str | None:
    return _pack("sub", catalogue_key)


def unsubscribe_data(subscription_id: int) -> str | None:
    return _pack("unsub", str(subscription_id))


def broadcast_data(confirm: bool, broadcast_id: int) -> str | None:
    return _pack("bc", "ok" if confirm else "no", str(broadcast_id))


def stop_data(confirm: bool) -> str:
    return f"{VERSION}:stop:{'ok' if confirm else 'no'}"


def timezone_data(zone: str) -> str | None:
    return _pack("tz", zone)


def _short(label: str) -> str:
    return label if len(label) <= BUTTON_LABEL_LIMIT else label[: BUTTON_LABEL_LIMIT - 1] + "…"


def popular_topics_keyboard(
    topics: Sequence[tuple[str, str]], per_row: int = 2
) -> InlineKeyboardMarkup | None:
    """One subscribe button per (catalogue key, label), `per_row` to a row."""
    buttons = [
        InlineKeyboardButton(_short(label), callback_data=data)
        for key, label in topics
        if (data := subscribe_data(key)) is not None
    ]
    if not buttons:
        return None
    rows = [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]
    return InlineKeyboardMarkup(rows)


def unsubscribe_keyboard(lang: str, followed: Sequence[Followed]) -> InlineKeyboardMarkup:
    """One button per subscription, one to a row."""
    rows = []
    for number, item in enumerate(followed, start=1):
        assert item.subscription.id is not None
        data = unsubscribe_data(item.subscription.id)
        if data is not None:
            label = t_plain(lang, "button_unsubscribe", label=f"{number}. {item.label}")
            rows.append([InlineKeyboardButton(_short(label), callback_data=data)])
    return InlineKeyboardMarkup(rows)


def broadcast_keyboard(lang: str, broadcast_id: int) -> InlineKeyboardMarkup:
    confirm = broadcast_data(True, broadcast_id)
    cancel = broadcast_data(False, broadcast_id)
    assert confirm is not None and cancel is not None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(t_plain(lang, "button_confirm"), callback_data=confirm),
                InlineKeyboardButton(t_plain(lang, "button_cancel"), callback_data=cancel),
            ]
        ]
    )


def stop_keyboard(lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    t_plain(lang, "button_stop_confirm"), callback_data=stop_data(True)
                ),
                InlineKeyboardButton(
                    t_plain(lang, "button_cancel"), callback_data=stop_data(False)
                ),
            ]
        ]
    )


def timezone_keyboard(zones: Sequence[str]) -> InlineKeyboardMarkup:
    """One button per zone, one to a row."""
    rows = [
        [InlineKeyboardButton(zone.replace("_", " "), callback_data=data)]
        for zone in zones
        if (data := timezone_data(zone)) is not None
    ]
    return InlineKeyboardMarkup(rows)
