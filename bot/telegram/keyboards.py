"""Inline keyboards and their callback data: small (<= 64 bytes) and versioned (`v1:...`).

A button lives as long as the message that carries it, so every payload names its version;
a payload this code no longer understands parses to None and gets a polite answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import t_plain
from bot.subscriptions import Followed

VERSION = "v1"
MAX_CALLBACK_BYTES = 64
BUTTON_LABEL_LIMIT = 40  # characters; Telegram shows little more on a phone

Action = Literal["sub", "unsub", "bc_ok", "bc_no"]


@dataclass(frozen=True)
class Callback:
    action: Action
    argument: str  # catalogue key, subscription id or broadcast id


def _pack(*parts: str) -> str | None:
    data = ":".join((VERSION, *parts))
    return data if len(data.encode()) <= MAX_CALLBACK_BYTES else None


def subscribe_data(catalogue_key: str) -> str | None:
    return _pack("sub", catalogue_key)


def unsubscribe_data(subscription_id: int) -> str | None:
    return _pack("unsub", str(subscription_id))


def broadcast_data(confirm: bool, broadcast_id: int) -> str | None:
    return _pack("bc", "ok" if confirm else "no", str(broadcast_id))


def parse_callback(data: str | None) -> Callback | None:
    """The button's meaning, or None for data of another version or shape."""
    if not data:
        return None
    parts = data.split(":")
    if parts[0] != VERSION or len(parts) < 3:
        return None
    if parts[1] == "sub" and len(parts) == 3 and parts[2]:
        return Callback("sub", parts[2])
    if parts[1] == "unsub" and len(parts) == 3 and parts[2].isdigit():
        return Callback("unsub", parts[2])
    if parts[1] == "bc" and len(parts) == 4 and parts[3].isdigit():
        if parts[2] == "ok":
            return Callback("bc_ok", parts[3])
        if parts[2] == "no":
            return Callback("bc_no", parts[3])
    return None


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
