"""Digests and instant alerts as Telegram HTML parts, each at most 4096 UTF-16 code units.

Plain data in (sections of releases, already grouped and ranked), strings out: no database and
no Telegram here. Every piece of feed text goes through `escape`; parts split only between
releases, and a release too long for a part on its own has its summary, then its title, cut.
Parts are sized by what Telegram counts (`visible_length`: the text after parsing), and a
digest is at most MAX_DIGEST_PARTS messages whatever the feeds contain: the releases that do
not fit are counted in their topic's "…and N more: /search TOPIC".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from bot.delivery.html import MAX_MESSAGE_UTF16 as MAX_MESSAGE_UNITS
from bot.delivery.html import escape, visible_length
from bot.i18n import t, t_plain
from bot.matching.query import MAX_QUERY_LENGTH

MAX_ITEMS_PER_TOPIC = 10
MAX_DIGEST_PARTS = 3
SUMMARY_CHARS = 160
LABEL_CHARS = 100
QUERY_CHARS = MAX_QUERY_LENGTH
TITLE_CHARS = 200
LINK_UNITS = 2000  # a longer (escaped) link is shown as plain text: no real release has one
# room kept free in every part for the "(2/3)" marker, whose width is unknown until the end
_PART_MARKER_RESERVE = 24

_WHITESPACE = re.compile(r"\s+")
_SAFE_LINK = re.compile(r"^https?://", re.IGNORECASE)

_EN_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ZH_WEEKDAYS = "一二三四五六日"


@dataclass
class DigestItem:
    release_id: int
    title: str
    link: str
    summary: str
    published_at: datetime
    in_title: bool = False
    corrected: bool = False  # the chat had this release; its publisher has since corrected it


@dataclass
class DigestSection:
    topic_label: str
    topic_query: str  # as the user can type it after /search
    items: list[DigestItem]  # at most MAX_ITEMS_PER_TOPIC, newest first
    more: int = 0  # releases of this topic left out


def format_date(moment: datetime, language: str) -> str:
    if language == "zh":
        return (
            f"{moment.year}年{moment.month}月{moment.day}日（星期{_ZH_WEEKDAYS[moment.weekday()]}）"
        )
    weekday = _EN_WEEKDAYS[moment.weekday()]
    return f"{weekday} {moment.day} {_EN_MONTHS[moment.month - 1]} {moment.year}"


def shorten(text: str, limit: int = SUMMARY_CHARS) -> str:
    """One line of at most `limit` characters, cut on a word boundary with "…"."""
    line = _WHITESPACE.sub(" ", text).strip()
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    # text without spaces (Chinese) or one very long word: cut mid-run rather than lose it all
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


# a tick composes thousands of digests over the same few hundred releases: render each once
@lru_cache(maxsize=8192)
def _render_release(
    title: str, link: str, summary: str, summary_limit: int, title_limit: int
) -> str:
    shown_title = shorten(title, title_limit) or shorten(link, title_limit)
    href = escape(link.strip())
    if _SAFE_LINK.match(href) and len(href) <= LINK_UNITS and not _WHITESPACE.search(href):
        head = f'• <a href="{href}">{escape(shown_title)}</a>'
    else:  # not a web link (javascript:, empty, spaces): show the title without a link
        head = f"• {escape(shown_title)}"
    line = shorten(summary, summary_limit) if summary_limit > 0 else ""
    return f"{head}\n{escape(line)}" if line else head


# What a part must keep free besides one release: the header or a repeated heading (labels are
# cut to LABEL_CHARS, at most 6 units a character escaped), line breaks and the "(2/3)" marker.
_HEADER_ROOM = 200
_HEADING_ROOM = LABEL_CHARS * 6 + 64
ITEM_BUDGET = MAX_MESSAGE_UNITS - _PART_MARKER_RESERVE - _HEADER_ROOM - _HEADING_ROOM


# a tick composes thousands of digests over the same few hundred releases: render each once
@lru_cache(maxsize=8192)
def _fitted_release(title: str, link: str, summary: str, budget: int) -> tuple[str, int]:
    """A release rendered within `budget` units, and its size: cut the summary, then the title."""
    text = _render_release(title, link, summary, SUMMARY_CHARS, TITLE_CHARS)
    units = visible_length(text)
    if units <= budget:
        return text, units
    for summary_limit in (80, 40, 0):
        text = _render_release(title, link, summary, summary_limit, TITLE_CHARS)
        units = visible_length(text)
        if units <= budget:
            return text, units
    title_limit = TITLE_CHARS
    while units > budget and title_limit > 1:
        title_limit = max(title_limit * 3 // 4, 1)
        text = _render_release(title, link, summary, 0, title_limit)
        units = visible_length(text)
    return text, units


@dataclass(frozen=True, slots=True)
class _Block:
    """A piece of a part: a heading, or one release (with the "…and N more" after the last)."""

    text: str
    units: int
    heading: str | None  # None for a heading; for a release, the heading a new part repeats


def _split_into_parts(header: str, blocks: list[_Block], language: str) -> list[str]:
    budget = MAX_MESSAGE_UNITS - _PART_MARKER_RESERVE
    parts: list[list[str]] = [[header]]
    used = visible_length(header)
    last_was_heading = False
    for block in blocks:
        if block.heading is None:  # a section heading, after a blank line
            if used + block.units + 2 > budget:
                parts.append([block.text])
                used = block.units
            else:
                parts[-1].append("\n\n" + block.text)
                used += block.units + 2
            last_was_heading = True
            continue
        if used + block.units + 1 > budget:
            if last_was_heading:  # never leave a heading alone at the end of a part
                parts[-1].pop()
                opening = block.heading
            else:
                opening = f"{block.heading} {t(language, 'digest_continued')}"
            parts.append([opening])
            used = visible_length(opening)
        parts[-1].append("\n" + block.text)
        used += block.units + 1
        last_was_heading = False
    texts = ["".join(part) for part in parts]
    if len(texts) > 1:
        texts = [
            text
            if i == 0
            else f"<i>{t(language, 'digest_part', index=i + 1, total=len(texts))}</i>\n{text}"
            for i, text in enumerate(texts)
        ]
    return texts


def _shown_items(section: DigestSection) -> list[DigestItem]:
    newest_first = sorted(section.items, key=lambda item: item.published_at, reverse=True)
    return newest_first[:MAX_ITEMS_PER_TOPIC]


def _section_blocks(section: DigestSection, language: str, keep: int) -> tuple[_Block, ...]:
    """The heading and the first `keep` releases; the rest counted in "…and N more"."""
    items = _shown_items(section)[:keep]
    return _blocks_of(
        language,
        section.topic_label,
        section.topic_query,
        section.more + len(section.items) - len(items),
        tuple((item.title, item.link, item.summary, item.corrected) for item in items),
    )


# a rush composes tens of thousands of digests whose sections are the same few thousand
@lru_cache(maxsize=8192)
def _blocks_of(
    language: str, label: str, query: str, more: int, items: tuple[tuple[str, str, str, bool], ...]
) -> tuple[_Block, ...]:
    heading = f"<b>{escape(shorten(label, LABEL_CHARS))}</b>"
    more_line = ""
    if more > 0:
        shown_query = shorten(query, QUERY_CHARS)
        more_line = "\n<i>" + t(language, "digest_more", count=more, query=shown_query) + "</i>"
    if not items:  # a topic cut whole: its heading and where to find its releases
        return (_Block(heading + more_line, visible_length(heading + more_line), None),)
    blocks = [_Block(heading, visible_length(heading), None)]
    for index, (title, link, summary, corrected) in enumerate(items):
        tail = more_line if index == len(items) - 1 else ""
        tail_units = visible_length(tail) if tail else 0
        mark = t(language, "digest_corrected") if corrected else ""
        mark_units = visible_length(mark) if mark else 0
        text, units = _fitted_release(title, link, summary, ITEM_BUDGET - tail_units - mark_units)
        if mark:  # after the bullet: "• Corrected: <title>"
            text, units = text[:2] + mark + text[2:], units + mark_units
        blocks.append(_Block(text + tail, units + tail_units, heading))
    return tuple(blocks)


def _parts_keeping(
    header: str, sections: list[DigestSection], language: str, keep: int, topics: int
) -> list[str]:
    """Parts showing the first `keep` releases (display order) of the first `topics` topics;
    the topics after those are summed up in one line."""
    blocks: list[_Block] = []
    for section in sections[:topics]:
        shown = min(keep, len(_shown_items(section)))
        blocks.extend(_section_blocks(section, language, shown))
        keep -= shown
    rest = sections[topics:]
    if rest:
        n = sum(len(section.items) + section.more for section in rest)
        # count is the topics: "in another topic" / "in 3 more topics", whatever the releases
        line = t(language, "digest_more_topics", count=len(rest), releases=n)
        blocks.append(_Block(f"<i>{line}</i>", visible_length(line), None))
    return _split_into_parts(header, blocks, language)


def _compose(header: str, sections: list[DigestSection], language: str) -> list[str]:
    sections = [section for section in sections if section.items]
    if not sections:
        return []
    shown = sum(len(_shown_items(section)) for section in sections)
    parts = _parts_keeping(header, sections, language, shown, len(sections))
    if len(parts) <= MAX_DIGEST_PARTS:
        return parts
    # too long for a few messages: keep as many releases as fit (parts grow with `keep`)
    low, high = 0, shown - 1
    while low < high:
        middle = (low + high + 1) // 2
        fits = len(_parts_keeping(header, sections, language, middle, len(sections)))
        low, high = (middle, high) if fits <= MAX_DIGEST_PARTS else (low, middle - 1)
    topics = len(sections)
    parts = _parts_keeping(header, sections, language, low, topics)
    while len(parts) > MAX_DIGEST_PARTS and topics > 1:  # even the "more" lines are too many
        topics -= 1
        parts = _parts_keeping(header, sections, language, low, topics)
    return parts


def _count_line(total: int, language: str) -> str:
    return t(language, "digest_count", count=total)


def manage_markup(language: str, *, private: bool = False, mini_app_url: str | None = None) -> str:
    """The Manage button every digest and alert ends with, as Bot API JSON.

    In a private chat with a Mini App (PUBLIC_URL set) it opens the app in one tap: a
    `web_app` button, which Telegram allows in private chats only. Anywhere else its callback
    data (bot.telegram.keyboards.MANAGE) is answered with what the chat (or topic) follows.
    """
    label = t_plain(language, "digest_manage_button")
    button: dict[str, object] = {"text": label, "callback_data": "v1:manage"}
    if private and mini_app_url:
        button = {"text": label, "web_app": {"url": mini_app_url}}
    return json.dumps({"inline_keyboard": [[button]]}, ensure_ascii=False)


def compose_digest(
    sections: list[DigestSection], *, language: str, tz: ZoneInfo, now: datetime, total: int
) -> list[str]:
    """The digest as Telegram HTML parts; [] when nothing matched.

    `sections` come in display order with their items newest first; `total` is the number of
    distinct releases in the digest, those behind "…and N more" included.
    """
    title = t(language, "digest_title", date=format_date(now.astimezone(tz), language))
    header = f"{title}\n{_count_line(total, language)}"
    return _compose(header, sections, language)


def compose_instant(sections: list[DigestSection], *, language: str, total: int) -> list[str]:
    """An instant alert for the releases of one poll, grouped by topic like a digest."""
    header = f"{t(language, 'alert_title')}\n{_count_line(total, language)}"
    return _compose(header, sections, language)
