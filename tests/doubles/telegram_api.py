"""A Telegram Bot API test double: an aiohttp server python-telegram-bot talks to via `base_url`.

    async with BotAPIDouble() as api, api.ptb_bot() as bot:   # or Application.builder()
        await bot.send_message(1, "<b>hi</b>", parse_mode="HTML")  #   .token(api.token)
        assert api.sent[0].text == "hi"                            #   .base_url(api.base_url)

It answers like Telegram does, so tests of the bot prove something:
- errors come with Telegram's HTTP status and description (PTB only looks at the status);
- HTML is parsed the way Telegram's own parser (tdlib `parse_html`) parses it, with its error
  texts ("Bad Request: can't parse entities: Unsupported start tag "p" at byte offset 0");
- text is 1-4096 UTF-16 code units after entity parsing and trimming of surrounding whitespace;
- flood limits (flood_limits=True): ~30/s in total, ~1/s per chat with a small burst, 20 per
  rolling minute per group; 429 with `parameters.retry_after`;
- a slow Telegram: `latency` seconds before every answer, `send_latency` more for sends and
  edits (getUpdates stays quick, as when Telegram is slow to deliver messages);
- getUpdates long polling honours `timeout`, `offset`, `limit` and `allowed_updates` (types not
  asked for are dropped, as Telegram does), and a second concurrent poller ends the first with
  409 Conflict;
- webhooks: after setWebhook (an https URL, as Telegram requires, unless the test allows
  http on loopback; a secret of 1-256 characters A-Z a-z 0-9 _ -) every update is POSTed to
  the URL with `X-Telegram-Bot-Api-Secret-Token`, in order; an answer that is not 2xx (or
  none) is retried, so an update can arrive twice; getUpdates then answers 409;
- every method and parameter is checked against the Bot API spec
  (tests/data/bot-api/telegram-bot-api.json).

Deliberate differences from Telegram (stricter, so mistakes surface in tests):
- a parameter the spec does not list is answered with 400 "Bad Request: unknown parameter X" and
  recorded in `spec_violations` (Telegram silently ignores it); a few legacy parameters Telegram
  still honours (disable_web_page_preview, reply_to_message_id) are accepted;
- with `strict_html=True` (the default) HTML is first judged by the bot's own checker,
  `bot.delivery.html` (the one implementation of the Bot API's documented rules), and what it
  refuses is a 400 "can't parse entities: <its reason>": an unsupported named entity such as
  `&nbsp;`, a bare `&`, an attribute Telegram gives no meaning (`<a target=...>`). Telegram
  itself shows those literally or ignores them: bugs a reader would see, so the double refuses
  them. `strict_html=False` behaves exactly like Telegram;
- spec methods the double does not implement are recorded in `unsupported_calls`; if the spec
  says the method returns only True the double answers True, otherwise 501 (a test fails loudly
  instead of de-jsoning an invented object);
- getChatMember: a user set with `set_chat_member_status` has that status; a user the double saw
  in that chat (push_message/push_callback) is "member"; anyone else is "left" (what Telegram
  answers for non-members). The bot itself is "member" unless set; setting it to "kicked",
  "left" or "restricted" in a group makes sends fail like Telegram (403 / 400).

With require_start=True, sending to a private chat that never wrote to the bot (no pushed
update) is 403 "bot can't initiate conversation with a user", and to an unknown group 400
"chat not found", as on Telegram; off by default so tests may send to any id.

Times in `Call.at` and `SentMessage.at` are `time.monotonic()` seconds (or the injected clock,
which also drives flood control, so tests can step time instead of sleeping).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from bot.delivery import html as telegram_html

if TYPE_CHECKING:
    from telegram import Bot
    from telegram.request import HTTPXRequest

DEFAULT_TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
MAX_TEXT_UTF16 = 4096
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
TEXT_BUTTONS_UNALLOWED = (
    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
)
# Update types Telegram leaves out until allowed_updates asks for them.
_NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
# Parameters Telegram still accepts although the current spec no longer lists them.
_LEGACY_PARAMS: dict[str, frozenset[str]] = {
    name: frozenset(
        {"disable_web_page_preview", "reply_to_message_id", "allow_sending_without_reply"}
    )
    for name in ("sendMessage", "editMessageText")
}
_SEND_METHODS = frozenset(
    [
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendAudio",
        "sendVideo",
        "sendAnimation",
        "sendVoice",
        "sendVideoNote",
        "sendMediaGroup",
        "sendLocation",
        "sendVenue",
        "sendContact",
        "sendPoll",
        "sendDice",
        "sendSticker",
        "forwardMessage",
        "copyMessage",
    ]
)
# Methods whose 429s ban the chat until retry_after has passed.
_RATE_LIMITED = _SEND_METHODS | {"editMessageText", "editMessageReplyMarkup"}
_CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})


def find_spec_path() -> Path:
    """tests/data/bot-api/telegram-bot-api.json (its source: SOURCE.md beside it)."""
    return Path(__file__).resolve().parent.parent / "data" / "bot-api" / "telegram-bot-api.json"


_SPEC_CACHE: dict[str, Any] = {}


def load_spec() -> dict[str, Any]:
    """The Bot API spec, loaded once per process."""
    if "spec" not in _SPEC_CACHE:
        _SPEC_CACHE["spec"] = json.loads(find_spec_path().read_text(encoding="utf-8"))
    spec: dict[str, Any] = _SPEC_CACHE["spec"]
    return spec


# ---------------------------------------------------------------------------------------------
# Records


@dataclass
class Call:
    """One request. `status` is 0 while it is in flight and when its connection was dropped."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 0


@dataclass
class SentMessage:
    """A message the double accepted (sendMessage) or its new state (editMessageText)."""

    chat_id: int
    message_id: int
    text: str  # plain text after entity parsing and trimming
    html: str  # the `text` parameter as sent
    parse_mode: str | None
    message_thread_id: int | None
    reply_markup: dict[str, Any] | None
    link_preview_disabled: bool
    at: float
    entities: list[dict[str, Any]] = field(default_factory=list)
    disable_notification: bool = False
    method: str = "sendMessage"
    paid_broadcast: bool = False  # sent with allow_paid_broadcast


@dataclass
class CallbackAnswer:
    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    at: float


class ApiError(Exception):
    """An error answer: HTTP status, Telegram description, optional `parameters`."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


# ---------------------------------------------------------------------------------------------
# Telegram's text formatting


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's offsets and limits."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


class EntityParseError(ValueError):
    """Text Telegram refuses to parse; str() is the part after "can't parse entities: "."""


_HTML_SPECIAL = re.compile(r"[<&]")
_TD_SPACE = frozenset(" \t\r\n\0\v\f")
_HTML_TAGS = frozenset(
    [
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "span",
        "pre",
        "code",
        "blockquote",
    ]
)
_SIMPLE_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# http(s)/tg/ton links, or a bare host ("example.org/x"); other schemes (javascript:) are refused.
_LINK = re.compile(
    r"^(?:(?:https?|tg|ton)://\S+|(?![a-z][a-z0-9+.-]*:[^0-9])[^\s/$.?#@:]\S*)$", re.IGNORECASE
)


_TAG_NAME = re.compile(r"[^ \t\r\n\0\v\f>]*")
_SPACES = re.compile(r"[ \t\r\n\0\v\f]*")
_ATTRIBUTE_NAME = re.compile(r"[^ \t\r\n\0\v\f=>]*")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.-]*")


def _end_of(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where a run of pattern's characters starting at pos ends."""
    match = pattern.match(text, pos)
    return match.end() if match else pos


def _decode_attribute_value(raw: str) -> str:
    if "&" not in raw:
        return raw
    chars: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&":
            char, end = _decode_html_entity(raw, i)
            if char is not None:
                chars.append(char)
                i = end
                continue
        chars.append(raw[i])
        i += 1
    return "".join(chars)


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_html_entity(text: str, pos: int) -> tuple[str | None, int]:
    """tdlib's decode_html_entity: (character or None when it is no entity, end position)."""
    n = len(text)
    end = pos + 1
    if end < n and text[end] == "#":
        end += 1
        value = 0
        if end < n and text[end] == "x":
            end += 1
            while end < n and text[end] in "0123456789abcdefABCDEF":
                value = value * 16 + int(text[end], 16)
                end += 1
        else:
            while end < n and text[end].isascii() and text[end].isdigit():
                value = value * 10 + int(text[end])
                end += 1
        if value == 0 or value >= 0x10FFFF or end - pos >= 10:
            return None, pos
        char = chr(value)
    else:
        while end < n and text[end].isascii() and text[end].isalpha():
            end += 1
        named = _NAMED_ENTITIES.get(text[pos + 1 : end])
        if named is None:
            return None, pos
        char = named
    if end < n and text[end] == ";":
        end += 1
    return char, end


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_start: int
    chunk_index: int  # len(out) when the tag opened: out[chunk_index:] is its text


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: (plain text, MessageEntity dicts) or EntityParseError.

    Follows tdlib's parse_html (MessageEntity.cpp), including its error texts and byte offsets.
    strict: the bot's checker (bot.delivery.html, the Bot API's documented rules) judges first.
    """
    if strict:
        try:
            telegram_html.visible_text(text)
        except telegram_html.TelegramHTMLError as exc:
            raise EntityParseError(str(exc)) from None
    out: list[str] = []
    utf16 = 0
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    n = len(text)
    i = 0
    while i < n:
        match = _HTML_SPECIAL.search(text, i)
        stop = match.start() if match else n
        if stop > i:
            chunk = text[i:stop]
            out.append(chunk)
            utf16 += utf16_len(chunk)
            i = stop
        if i >= n:
            break
        if text[i] == "&":
            char, end = _decode_html_entity(text, i)
            if char is None:
                char, end = "&", i + 1
            if 0xD800 <= ord(char) <= 0xDFFF:
                raise EntityParseError(
                    "Text contains invalid Unicode characters after decoding HTML entities, "
                    "check for unmatched surrogate code units"
                )
            out.append(char)
            utf16 += utf16_len(char)
            i = end
            continue

        begin = i
        i += 1
        if i < n and text[i] == "/":
            if not stack:
                raise EntityParseError(
                    f"Unexpected end tag at byte offset {_byte_offset(text, begin)}"
                )
            i += 1
            while i < n and text[i] not in _TD_SPACE and text[i] != ">":
                i += 1
            end_name = text[begin + 2 : i]  # tdlib compares end tags case-sensitively
            while i < n and text[i] in _TD_SPACE:
                i += 1
            if i >= n or text[i] != ">":
                raise EntityParseError(
                    f"Unclosed end tag at byte offset {_byte_offset(text, begin)}"
                )
            i += 1
            opened = stack.pop()
            if end_name and end_name != opened.name:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                    f'expected "</{opened.name}>", found "</{end_name}>"'
                )
            length = utf16 - opened.utf16_start
            if length > 0:
                inner = "".join(out[opened.chunk_index :]) if opened.name == "a" else ""
                entity = _entity_for_tag(opened, length, inner, entities)
                if entity is not None:
                    entities.append(entity)
            continue

        # a start tag
        i = _end_of(_TAG_NAME, text, i)
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        tag = text[begin + 1 : i].lower()
        if tag not in _HTML_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}'
            )
        argument = ""
        while i < n and text[i] != ">":
            i = _end_of(_SPACES, text, i)
            if i >= n or text[i] == ">":
                break
            attr_begin = i
            i = _end_of(_ATTRIBUTE_NAME, text, i)
            attr_name = text[attr_begin:i]
            if not attr_name:
                raise EntityParseError(
                    f'Empty attribute name in the tag "{tag}" at byte offset '
                    f"{_byte_offset(text, begin)}"
                )
            i = _end_of(_SPACES, text, i)
            if i >= n or text[i] != "=":
                if tag == "blockquote" and attr_name == "expandable":
                    argument = "expandable"
                    continue
                raise EntityParseError(
                    "Expected equal sign in declaration of an attribute of the tag "
                    f'"{tag}" at byte offset {_byte_offset(text, begin)}'
                )
            i = _end_of(_SPACES, text, i + 1)
            if i >= n:
                raise EntityParseError(
                    f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}'
                )
            if text[i] not in "'\"":
                token_begin = i
                i = _end_of(_NAME_TOKEN, text, i)
                value = text[token_begin:i].lower()
                if i < n and text[i] not in _TD_SPACE and text[i] != ">":
                    raise EntityParseError(
                        "Unexpected end of name token at byte offset "
                        f"{_byte_offset(text, token_begin)}"
                    )
            else:
                closing = text.find(text[i], i + 1)
                closing = n if closing == -1 else closing
                value = _decode_attribute_value(text[i + 1 : closing])
                i = min(closing + 1, n)
            if i >= n:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                )
            if tag == "a" and attr_name == "href":
                argument = value
            elif tag == "code" and attr_name == "class" and value.startswith("language-"):
                argument = value[len("language-") :]
            elif tag == "span" and attr_name == "class" and value.startswith("tg-"):
                argument = value[len("tg-") :]
            elif tag == "tg-emoji" and attr_name == "emoji-id":
                argument = value
            elif tag == "tg-time" and attr_name in ("unix", "format"):
                argument = f"{argument}|{attr_name}={value}"
        i += 1  # past '>'
        if tag == "span" and argument != "spoiler":
            raise EntityParseError(
                'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(text, begin)}"
            )
        if tag == "tg-emoji" and not (argument.isdigit() and int(argument) != 0):
            raise EntityParseError("Invalid custom emoji identifier specified")
        if tag == "tg-time" and not re.search(r"\|unix=\d+", argument):
            raise EntityParseError("Invalid Unix time specified")
        stack.append(_OpenTag(tag, argument, utf16, len(out)))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _entity_for_tag(
    opened: _OpenTag, length: int, inner_text: str, entities: list[dict[str, Any]]
) -> dict[str, Any] | None:
    offset = opened.utf16_start
    if opened.name in _SIMPLE_ENTITY:
        return {"type": _SIMPLE_ENTITY[opened.name], "offset": offset, "length": length}
    if opened.name == "a":
        url = opened.argument or inner_text
        if not _LINK.match(url):
            return None  # Telegram drops a link it cannot use and keeps the text
        if "://" not in url:
            url = "http://" + url
        return {"type": "text_link", "offset": offset, "length": length, "url": url}
    if opened.name == "code":
        entity: dict[str, Any] = {"type": "code", "offset": offset, "length": length}
        if opened.argument:
            entity["language"] = opened.argument
        return entity
    if opened.name == "pre":
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == offset
            and last["length"] == length
            and "language" in last
        ):
            entities.pop()
            return {"type": "pre", "offset": offset, "length": length, "language": last["language"]}
        return {"type": "pre", "offset": offset, "length": length}
    if opened.name == "blockquote":
        kind = "expandable_blockquote" if opened.argument == "expandable" else "blockquote"
        return {"type": kind, "offset": offset, "length": length}
    if opened.name == "tg-emoji":
        return {
            "type": "custom_emoji",
            "offset": offset,
            "length": length,
            "custom_emoji_id": opened.argument,
        }
    if opened.name == "tg-time":
        attrs = dict(part.split("=", 1) for part in opened.argument.split("|") if "=" in part)
        entity = {"type": "date_time", "offset": offset, "length": length}
        entity["unix_time"] = int(attrs["unix"])
        if attrs.get("format"):
            entity["date_time_format"] = attrs["format"]
        return entity
    return None


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's MarkdownV2: reserved characters must be escaped; entities must be closed."""
    out: list[str] = []
    utf16 = 0
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, int]] = []  # (marker, utf16 start, byte offset)
    markers = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}
    n = len(text)
    i = 0

    def emit(chunk: str) -> None:
        nonlocal utf16
        out.append(chunk)
        utf16 += utf16_len(chunk)

    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and 0 < ord(text[i + 1]) < 127:
            emit(text[i + 1])
            i += 2
            continue
        if text.startswith("```", i):
            start = i
            end = text.find("```", i + 3)
            while end != -1 and text[end - 1] == "\\":
                end = text.find("```", end + 1)
            if end == -1:
                raise EntityParseError(
                    f"Can't find end of Pre entity at byte offset {_byte_offset(text, start)}"
                )
            body = text[i + 3 : end]
            language = ""
            if "\n" in body:
                first, rest = body.split("\n", 1)
                if first and not any(ch in _TD_SPACE for ch in first):
                    language, body = first, rest
            body = re.sub(r"\\([\\`])", r"\1", body)
            entity: dict[str, Any] = {"type": "pre", "offset": utf16, "length": utf16_len(body)}
            if language:
                entity["language"] = language
            if body:
                entities.append(entity)
            emit(body)
            i = end + 3
            continue
        if c == "`":
            start = i
            end = i + 1
            while end < n and text[end] != "`":
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                raise EntityParseError(
                    f"Can't find end of Code entity at byte offset {_byte_offset(text, start)}"
                )
            body = re.sub(r"\\([\\`])", r"\1", text[i + 1 : end])
            if body:
                entities.append({"type": "code", "offset": utf16, "length": utf16_len(body)})
            emit(body)
            i = end + 1
            continue
        marker = "__" if text.startswith("__", i) else "||" if text.startswith("||", i) else c
        if marker in markers:
            if stack and stack[-1][0] == marker:
                _, start16, _ = stack.pop()
                if utf16 > start16:
                    entities.append(
                        {"type": markers[marker], "offset": start16, "length": utf16 - start16}
                    )
            else:
                stack.append((marker, utf16, _byte_offset(text, i)))
            i += len(marker)
            continue
        if c == "[":
            stack.append(("[", utf16, _byte_offset(text, i)))
            i += 1
            continue
        if c == "]" and stack and stack[-1][0] == "[":
            _, start16, byte_at = stack.pop()
            if i + 1 >= n or text[i + 1] != "(":
                raise EntityParseError("Can't find end of a URL at byte offset " + str(byte_at))
            close = text.find(")", i + 2)
            if close == -1:
                raise EntityParseError(f"Can't find end of a URL at byte offset {byte_at}")
            url = text[i + 2 : close].replace("\\)", ")").replace("\\\\", "\\")
            if utf16 > start16 and _LINK.match(url):
                entities.append(
                    {"type": "text_link", "offset": start16, "length": utf16 - start16, "url": url}
                )
            i = close + 1
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1
            continue  # a blockquote line; the entity itself is not needed by the double
        if c in _MDV2_RESERVED:
            raise EntityParseError(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
            )
        emit(c)
        i += 1
    if stack:
        marker, _, byte_at = stack[-1]
        kinds = {
            "*": "Bold",
            "_": "Italic",
            "__": "Underline",
            "~": "Strikethrough",
            "||": "Spoiler",
            "[": "TextUrl",
        }
        raise EntityParseError(f"Can't find end of {kinds[marker]} entity at byte offset {byte_at}")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's legacy Markdown: *bold* _italic_ `code` ```pre``` [text](url)."""
    out: list[str] = []
    utf16 = 0
    entities: list[dict[str, Any]] = []
    n = len(text)
    i = 0
    kinds = {"*": "bold", "_": "italic", "`": "code"}
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "*_`[":
            out.append(text[i + 1])
            utf16 += 1
            i += 2
            continue
        if c in kinds or c == "[":
            start = i
            if text.startswith("```", i):
                end = text.find("```", i + 3)
                body, after, kind = text[i + 3 : end], end + 3, "pre"
            elif c == "[":
                end = text.find("](", i + 1)
                close = text.find(")", end + 2) if end != -1 else -1
                if close == -1:
                    end = -1
                body, after, kind = text[i + 1 : end], close + 1, "text_link"
            else:
                end = text.find(c, i + 1)
                body, after, kind = text[i + 1 : end], end + 1, kinds[c]
            if end == -1:
                raise EntityParseError(
                    "Can't find end of the entity starting at byte offset "
                    f"{_byte_offset(text, start)}"
                )
            length = utf16_len(body)
            if length:
                entity: dict[str, Any] = {"type": kind, "offset": utf16, "length": length}
                if kind == "text_link":
                    entity["url"] = text[end + 2 : close]
                entities.append(entity)
            out.append(body)
            utf16 += length
            i = after
            continue
        out.append(c)
        utf16 += utf16_len(c)
        i += 1
    return "".join(out), entities


def trim_text(plain: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram strips leading and trailing whitespace and clips the entities to what is left."""
    stripped = plain.strip(" \t\r\n\v\f")
    if stripped == plain:
        return plain, entities
    lead = utf16_len(plain[: len(plain) - len(plain.lstrip(" \t\r\n\v\f"))])
    total = utf16_len(stripped)
    clipped: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            clipped.append({**entity, "offset": start, "length": end - start})
    return stripped, clipped


def formatted_text(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None, *, strict: bool
) -> tuple[str, list[dict[str, Any]]]:
    """(plain text, entities) Telegram would store, or ApiError like Telegram's."""
    mode = (parse_mode or "").lower()
    try:
        if mode in ("", "none"):
            plain, parsed = text, [dict(e) for e in entities or []]
        elif mode == "html":
            plain, parsed = parse_html(text, strict=strict)
        elif mode == "markdownv2":
            plain, parsed = parse_markdown_v2(text)
        elif mode == "markdown":
            plain, parsed = parse_markdown(text)
        else:
            raise bad_request(f"unsupported parse_mode {parse_mode}")
    except EntityParseError as exc:
        raise bad_request(f"can't parse entities: {exc}") from None
    return trim_text(plain, parsed)


# ---------------------------------------------------------------------------------------------
# Flood control


class _TokenBucket:
    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def wait_time(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class _FloodControl:
    """Telegram's broadcast limits: total per second, per chat per second, per group per minute."""

    def __init__(
        self,
        clock: Callable[[], float],
        global_per_second: float,
        chat_per_second: float,
        chat_burst: int,
        group_per_minute: int,
    ) -> None:
        self.clock = clock
        self.global_per_second = global_per_second
        self.chat_per_second = chat_per_second
        self.chat_burst = chat_burst
        self.group_per_minute = group_per_minute
        self.reset()

    def reset(self) -> None:
        now = self.clock()
        self.total = _TokenBucket(self.global_per_second, max(1.0, self.global_per_second), now)
        self.paid = _TokenBucket(1000.0, 1000.0, now)
        self.chats: dict[int, _TokenBucket] = {}
        self.groups: dict[int, deque[float]] = {}

    def retry_after(self, chat_id: int, *, paid: bool) -> int | None:
        """Whole seconds until a message to chat_id may go (None: it may go now, and is counted)."""
        now = self.clock()
        overall = self.paid if paid else self.total
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.chats[chat_id] = _TokenBucket(
                self.chat_per_second, max(1, self.chat_burst), now
            )
        waits = [overall.wait_time(now), chat.wait_time(now)]
        window: deque[float] | None = None
        if chat_id < 0:
            window = self.groups.setdefault(chat_id, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= self.group_per_minute:
                waits.append(window[0] + 60 - now)
        wait = max(waits)
        if wait > 0:
            return max(1, math.ceil(wait))
        overall.take()
        chat.take()
        if window is not None:
            window.append(now)
        return None


# ---------------------------------------------------------------------------------------------
# The server


@dataclass
class _StoredMessage:
    message: dict[str, Any]  # the Message object as the double last returned it
    from_bot: bool


@dataclass
class _PlannedFailure:
    status: int
    description: str
    retry_after: int | None
    times: int


Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class BotAPIDouble:
    """A Telegram Bot API server on 127.0.0.1 for tests and benchmarks (see the module doc).

    What tests read: calls, sent, edited, deleted, callback_answers, chat_actions, commands,
    spec_violations, unsupported_calls, flood_429_count, retry_after_violations,
    pending_updates; messages_to(), calls_to(), wait_for(), wait_for_message().
    What tests do: push_message(), push_callback(), push_update(), set_chat_member_status(),
    block_chat(), push_my_chat_member(), deactivate_user(), delete_chat(), migrate_chat(),
    delete_topic(), close_topic(), reopen_topic(), fail_next(), drop_next(), hold_answers(),
    reset_limits();
    ptb_bot() / ptb_request().
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "press_digest_bot",
        flood_limits: bool = False,
        global_per_second: float = 30,
        chat_per_second: float = 1,
        chat_burst: int = 3,
        group_per_minute: int = 20,
        latency: float = 0.0,
        send_latency: float = 0.0,
        strict_html: bool = True,
        require_start: bool = False,
        allow_http_webhooks: bool = False,
        webhook_retry_delay: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.bot_id = int(token.split(":", 1)[0])
        self.flood_limits = flood_limits
        self.latency = latency
        self.send_latency = send_latency  # on top of latency, for sends and edits only
        self.strict_html = strict_html
        self.require_start = require_start
        self.allow_http_webhooks = allow_http_webhooks  # Telegram itself wants https
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_secret = ""
        # every POST to the webhook: (update_id, HTTP status, or 0 when no answer came)
        self.webhook_deliveries: list[tuple[int, int]] = []
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_wake = asyncio.Event()
        self._clock = clock
        self._flood = _FloodControl(
            clock, global_per_second, chat_per_second, chat_burst, group_per_minute
        )
        self.spec = load_spec()
        self._methods: dict[str, dict[str, Any]] = self.spec["methods"]
        self._method_by_lower = {name.lower(): name for name in self._methods}
        self._fields: dict[str, dict[str, list[str]]] = {
            name: {f["name"]: f["types"] for f in method.get("fields", [])}
            for name, method in self._methods.items()
        }
        self._required: dict[str, list[str]] = {
            name: [f["name"] for f in method.get("fields", []) if f["required"]]
            for name, method in self._methods.items()
        }

        self.calls: list[Call] = []
        self.sent: list[SentMessage] = []
        self.edited: list[SentMessage] = []
        self.deleted: list[tuple[int, int]] = []
        self.callback_answers: list[CallbackAnswer] = []
        self.spec_violations: list[str] = []
        self.unsupported_calls: list[Call] = []
        self.chat_actions: list[tuple[int, str]] = []
        self.flood_429_count = 0
        self.retry_after_violations: list[str] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # setChatMenuButton: chat id (None = the default button) -> MenuButton
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.webhook_url = ""

        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._usernames: dict[str, int] = {}
        self._members: dict[tuple[int, int], str] = {}
        self._seen_members: set[tuple[int, int]] = set()
        self._blocked: set[int] = set()
        self._deleted_chats: set[int] = set()
        self._deactivated: set[int] = set()
        self._deleted_topics: set[tuple[int, int]] = set()
        self._closed_topics: set[tuple[int, int]] = set()
        self._banned_until: dict[int, float] = {}  # chat -> end of the last retry_after given
        self._migrated: dict[int, int] = {}
        self._messages: dict[tuple[int, int], _StoredMessage] = {}
        self._last_message_id: dict[int, int] = {}
        self._callback_ids: dict[str, bool] = {}  # issued id -> answered
        self._failures: dict[str, deque[_PlannedFailure]] = {}
        self._drops: dict[str, list[int]] = {}  # method -> [times left, after_processing]
        self._holds: dict[str, list[float]] = {}  # method -> [fraction, seconds, calls seen]
        self.held_answers = 0
        self._updates: deque[dict[str, Any]] = deque()
        self._next_update_id = 700_000_001
        self._allowed_updates: set[str] | None = None
        self._callback_counter = itertools.count(1)
        self._poll_generation = 0
        self._poll_waiters: set[asyncio.Future[None]] = set()
        self._activity_waiters: set[asyncio.Future[None]] = set()
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self.port = 0

        self._handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "getChatMember": self._get_chat_member,
            "getChat": self._get_chat,
            "getChatAdministrators": self._get_chat_administrators,
            "sendChatAction": self._send_chat_action,
            "close": self._true,
            "logOut": self._true,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Press Digest",
            "username": self.bot_username,
        }

    def ptb_request(self, **kwargs: Any) -> HTTPXRequest:
        """A PTB request for this double without loading CA certificates (~0.1 s per client).

        The double is plain HTTP on 127.0.0.1, so nothing is lost. Use it for both requests:
        `Application.builder().token(api.token).base_url(api.base_url)
        .request(api.ptb_request()).get_updates_request(api.ptb_request())`.
        """
        from telegram.request import HTTPXRequest

        httpx_kwargs = {"verify": False, **kwargs.pop("httpx_kwargs", {})}
        return HTTPXRequest(httpx_kwargs=httpx_kwargs, **kwargs)

    def ptb_bot(self) -> Bot:
        """A `telegram.Bot` pointed at this double (use it as `async with api.ptb_bot() as bot`)."""
        from telegram import Bot

        return Bot(
            self.token,
            base_url=self.base_url,
            base_file_url=self.base_file_url,
            request=self.ptb_request(),
            get_updates_request=self.ptb_request(connection_pool_size=1),
        )

    async def start(self) -> None:
        self._stopping = False
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])

    async def stop(self) -> None:
        self._stopping = True
        self._wake_pollers()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotAPIDouble:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what tests look at --------------------------------------------------------------------

    def messages_to(self, chat_id: int, thread_id: int | None = None) -> list[SentMessage]:
        return [
            m
            for m in self.sent
            if m.chat_id == chat_id and (thread_id is None or m.message_thread_id == thread_id)
        ]

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Waits until predicate is true; AssertionError saying what happened on timeout.

        The predicate is checked after every request the double answers (and every 50 ms, for
        conditions on other state), so latencies measured with it are not rounded up.
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = ", ".join(f"{c.method}->{c.status}" for c in self.calls[-12:])
                name = getattr(predicate, "__qualname__", repr(predicate))
                raise AssertionError(
                    f"condition {name} still false after {timeout}s; {len(self.sent)} messages "
                    f"sent; last calls: [{recent}]"
                    + (f"; spec violations: {self.spec_violations}" if self.spec_violations else "")
                )
            activity: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._activity_waiters.add(activity)
            try:
                await asyncio.wait({activity}, timeout=min(remaining, 0.05))
            finally:
                self._activity_waiters.discard(activity)

    async def wait_for_message(
        self,
        chat_id: int,
        *,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[SentMessage]:
        try:
            await self.wait_for(lambda: len(self.messages_to(chat_id)) >= count, timeout)
        except AssertionError as exc:
            got = [m.text[:80] for m in self.messages_to(chat_id)]
            raise AssertionError(
                f"expected {count} message(s) to chat {chat_id}, got {len(got)}: {got}; {exc}"
            ) from None
        return self.messages_to(chat_id)

    # -- updates the bot receives --------------------------------------------------------------

    def _remember_chat(self, chat: dict[str, Any]) -> None:
        known = self._chats.setdefault(chat["id"], {})
        known.update(chat)
        if username := chat.get("username"):
            self._usernames[username.lower()] = chat["id"]

    def _user(self, user_id: int) -> dict[str, Any]:
        return self._users.get(
            user_id, {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        )

    def _next_message_id(self, chat_id: int) -> int:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    def push_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        thread_id: int | None = None,
        is_forum: bool = False,
        chat_title: str | None = None,
        first_name: str = "Test",
        username: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queues a text message from a user; returns the Update dict the bot will receive."""
        if chat_type == "private" and chat_id <= 0:
            raise ValueError("private chats have positive ids (the user's id)")
        if chat_type != "private" and chat_id >= 0:
            raise ValueError("groups, supergroups and channels have negative ids")
        if user_id is None:
            user_id = chat_id if chat_type == "private" else 1_000_001
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
            if username:
                chat["username"] = username
        else:
            chat["title"] = chat_title or self._chats.get(chat_id, {}).get("title") or "Test group"
            if is_forum:
                chat["is_forum"] = True
        self._remember_chat(chat)
        self._seen_members.add((chat_id, user_id))
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if is_forum:
                message["is_topic_message"] = True
        if text.startswith("/"):
            command = re.split(r"\s", text, maxsplit=1)[0]
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
            ]
        if extra:
            message.update(extra)
        self._messages[(chat_id, message["message_id"])] = _StoredMessage(message, from_bot=False)
        return self.push_update({"message": message})

    def push_callback(
        self,
        chat_id: int,
        user_id: int,
        data: str,
        *,
        message_id: int,
        chat_type: str = "private",
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Queues a button press on a message the bot sent; returns the Update dict."""
        stored = self._messages.get((chat_id, message_id))
        if stored is None or not stored.from_bot:
            raise ValueError(f"the bot sent no message {message_id} to chat {chat_id}")
        if chat_id not in self._chats:
            self._remember_chat({"id": chat_id, "type": chat_type})
        self._seen_members.add((chat_id, user_id))
        query_id = str(4_000_000_000_000_000 + next(self._callback_counter))
        self._callback_ids[query_id] = False
        message = dict(stored.message)
        if thread_id is not None:
            message["message_thread_id"] = thread_id
        return self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self._user(user_id),
                    "message": message,
                    "chat_instance": str(abs(hash(("chat", chat_id))) % 10**18),
                    "data": data,
                }
            }
        )

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queues any Update (update_id is assigned when missing)."""
        if "update_id" not in update:
            update = {"update_id": self._next_update_id, **update}
        self._next_update_id = max(self._next_update_id, update["update_id"]) + 1
        self._updates.append(update)
        self._wake_pollers()
        self._wake_webhook()
        return update

    def _wake_pollers(self) -> None:
        for waiter in self._poll_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- behaviours ----------------------------------------------------------------------------

    def set_chat_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        if status not in MEMBER_STATUSES:
            raise ValueError(f"status must be one of {sorted(MEMBER_STATUSES)}")
        self._members[(chat_id, user_id)] = status

    def block_chat(self, chat_id: int, *, notify: bool = False) -> None:
        """Sends to chat_id now fail with 403, as when a user blocks the bot or a group kicks it.

        notify=True also queues the my_chat_member update Telegram sends the bot (status kicked).
        """
        self._blocked.add(chat_id)
        if notify:
            self.push_update(
                {
                    "my_chat_member": {
                        "chat": self.chat_object(chat_id),
                        "from": self._user(chat_id if chat_id > 0 else 1_000_001),
                        "date": int(time.time()),
                        "old_chat_member": {"status": "member", "user": self.bot_user},
                        "new_chat_member": {
                            "status": "kicked",
                            "user": self.bot_user,
                            "until_date": 0,
                        },
                    }
                }
            )

    def push_my_chat_member(
        self,
        chat_id: int,
        old_status: str,
        new_status: str,
        *,
        user_id: int | None = None,
        chat_type: str | None = None,
        chat_title: str | None = None,
        is_forum: bool = False,
        language_code: str | None = "en",
    ) -> dict[str, Any]:
        """The bot's status in chat_id changes (added, removed, blocked, unblocked, promoted).

        Applies it (sends to the chat then fail or work again, as on Telegram) and queues the
        my_chat_member update Telegram sends: chat, from (who did it), date, old_chat_member
        and new_chat_member as ChatMember objects of the bot. In a private chat Telegram sends
        it only when the user blocks ("kicked") or unblocks ("member") the bot.
        """
        for status in (old_status, new_status):
            if status not in MEMBER_STATUSES:
                raise ValueError(f"status must be one of {sorted(MEMBER_STATUSES)}")
        kind = chat_type or self.chat_object(chat_id)["type"]
        if kind == "private":
            if {old_status, new_status} != {"member", "kicked"}:
                raise ValueError("in a private chat the bot is only blocked or unblocked")
            user_id = chat_id
            if new_status == "kicked":
                self._blocked.add(chat_id)
            else:
                self._blocked.discard(chat_id)
        else:
            if chat_id >= 0:
                raise ValueError("groups, supergroups and channels have negative ids")
            user_id = user_id or 1_000_001
            self._blocked.discard(chat_id)
            self._members[(chat_id, self.bot_id)] = new_status
        chat: dict[str, Any] = {**self.chat_object(chat_id), "type": kind}
        if kind != "private":
            chat["title"] = chat_title or chat.get("title") or "Test group"
            if is_forum:
                chat["is_forum"] = True
        self._remember_chat(chat)
        user = {**self._user(user_id)}
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return self.push_update(
            {
                "my_chat_member": {
                    "chat": chat,
                    "from": user,
                    "date": int(time.time()),
                    "old_chat_member": self._member_object(old_status, self.bot_user),
                    "new_chat_member": self._member_object(new_status, self.bot_user),
                }
            }
        )

    def deactivate_user(self, chat_id: int) -> None:
        """The user deleted their account: sends fail with 403 "user is deactivated"."""
        self._deactivated.add(chat_id)

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """Sends to this forum topic fail with 400 "message thread not found"."""
        self._deleted_topics.add((chat_id, thread_id))

    def close_topic(self, chat_id: int, thread_id: int) -> None:
        """Sends to this forum topic fail with 400 "TOPIC_CLOSED"."""
        self._closed_topics.add((chat_id, thread_id))

    def reopen_topic(self, chat_id: int, thread_id: int) -> None:
        self._closed_topics.discard((chat_id, thread_id))

    def topic_is_gone(self, chat_id: object, thread_id: object) -> bool:
        """Whether sends to this forum topic fail because it is closed or deleted."""
        topic = (chat_id, thread_id)
        return topic in self._closed_topics or topic in self._deleted_topics

    def unblock_chat(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)

    def delete_chat(self, chat_id: int) -> None:
        self._deleted_chats.add(chat_id)

    def migrate_chat(self, chat_id: int, new_chat_id: int, *, notify: bool = False) -> None:
        """The group became a supergroup: sends to chat_id fail with 400 and migrate_to_chat_id.

        notify=True also queues the two service messages Telegram sends the bot
        (migrate_to_chat_id in the old chat, migrate_from_chat_id in the new one).
        """
        self._migrated[chat_id] = new_chat_id
        title = self._chats.get(chat_id, {}).get("title", "Test group")
        self._remember_chat({"id": new_chat_id, "type": "supergroup", "title": title})
        if not notify:
            return
        user = self._user(1_000_001)
        for chat, field_name, value in (
            ({"id": chat_id, "type": "group", "title": title}, "migrate_to_chat_id", new_chat_id),
            (self.chat_object(new_chat_id), "migrate_from_chat_id", chat_id),
        ):
            message_id = self._next_message_id(chat["id"])
            self.push_update(
                {
                    "message": {
                        "message_id": message_id,
                        "from": user,
                        "chat": chat,
                        "date": int(time.time()),
                        field_name: value,
                    }
                }
            )

    @property
    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return len(self._updates)

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        description: str = "Internal Server Error",
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of method ("*" for any) get this error instead of an answer."""
        if status == 429:
            retry_after = retry_after or 1
            if description == "Internal Server Error":
                description = f"Too Many Requests: retry after {retry_after}"
        self._failures.setdefault(method, deque()).append(
            _PlannedFailure(status, description, retry_after, times)
        )

    def drop_next(self, method: str, times: int = 1, *, after_processing: bool = False) -> None:
        """The next `times` calls of method ("*" for any) lose their connection without an answer.

        after_processing=True does the work first (the message is sent) and then drops the
        answer: the case where a retry delivers a message twice.
        """
        self._drops[method] = [times, int(after_processing)]

    def hold_answers(self, method: str, *, fraction: float, seconds: float) -> None:
        """A slow Telegram: `fraction` of successful calls of method are answered `seconds` late.

        The work is done (and recorded) first, only the answer waits, so a client that gives up
        and retries delivers the message twice. Calls are picked evenly (every 1/fraction-th),
        so a test gets the same share each run; fraction=0 ends the holding.
        """
        self._holds[method] = [fraction, seconds, 0]

    def _hold_for(self, method: str) -> float:
        """Seconds to hold this answer (0: answer at once); counts the call."""
        hold = self._holds.get(method)
        if hold is None or hold[0] <= 0:
            return 0.0
        fraction, seconds, seen = hold
        hold[2] = seen + 1
        if math.floor((seen + 1) * fraction) > math.floor(seen * fraction):
            self.held_answers += 1
            return seconds
        return 0.0

    def reset_limits(self) -> None:
        """Forgets flood-control history and running retry_after bans (counts are kept)."""
        self._flood.reset()
        self._banned_until.clear()

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._answer(request)
        finally:
            for waiter in self._activity_waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        at = self._clock()
        tail = request.match_info["tail"]
        prefix = f"bot{self.token}/"
        if not tail.startswith("bot"):
            return _answer_error(ApiError(404, "Not Found"))
        if not tail.startswith(prefix):
            return _answer_error(ApiError(401, "Unauthorized"))
        method = self._method_by_lower.get(tail[len(prefix) :].lower())
        if method is None:
            self.spec_violations.append(f"unknown method {tail[len(prefix) :]!r}")
            self.calls.append(Call(tail[len(prefix) :], dict(request.query), at, 404))
            return _answer_error(ApiError(404, "Not Found"))
        delay = self.latency + (self.send_latency if method in _RATE_LIMITED else 0.0)
        if delay:
            await asyncio.sleep(delay)
        try:
            raw = await _read_params(request)
        except ValueError as exc:
            return _answer_error(bad_request(str(exc)))
        call = Call(method, raw, at)
        self.calls.append(call)

        drop_after = False
        for key in (method, "*"):
            drop = self._drops.get(key)
            if drop and drop[0] > 0:
                drop[0] -= 1
                if not drop[1]:
                    return _drop_connection(request)
                drop_after = True
                break

        try:
            failure = self._take_failure(method)
            if failure is not None:
                raise failure
            params = self._check_params(method, raw)
            call.params = params
            handler = self._handlers.get(method)
            result = await (handler(params) if handler else self._unsupported(call))
        except ApiError as exc:
            call.status = exc.status
            if exc.status == 429 and not isinstance(exc, _PlannedError):
                self.flood_429_count += 1
            if (
                exc.status == 429
                and exc.parameters
                and method in _RATE_LIMITED
                and not isinstance(exc, _EarlyRetryError)
            ):
                self._remember_ban(raw.get("chat_id"), exc.parameters.get("retry_after"))
            if drop_after:
                return _drop_connection(request)
            return _answer_error(exc)
        call.status = 200
        if drop_after:
            call.status = 0
            return _drop_connection(request)
        if held := self._hold_for(method):
            await asyncio.sleep(held)
        return web.Response(
            body=json.dumps({"ok": True, "result": result}, ensure_ascii=False).encode(),
            content_type="application/json",
        )

    def _take_failure(self, method: str) -> ApiError | None:
        for key in (method, "*"):
            queue = self._failures.get(key)
            if queue:
                failure = queue[0]
                failure.times -= 1
                if failure.times <= 0:
                    queue.popleft()
                parameters = (
                    {"retry_after": failure.retry_after}
                    if failure.retry_after is not None
                    else None
                )
                return _PlannedError(failure.status, failure.description, parameters)
        return None

    def _check_params(self, method: str, raw: dict[str, Any]) -> dict[str, Any]:
        fields = self._fields[method]
        legacy = _LEGACY_PARAMS.get(method, frozenset())
        params: dict[str, Any] = {}
        for name, value in raw.items():
            if name == "api_kwargs":
                continue
            types = fields.get(name)
            if types is None:
                if name in legacy:
                    params[name] = _coerce(
                        name,
                        value,
                        ["Boolean"] if "disable" in name or "allow" in name else ["Integer"],
                    )
                    continue
                self.spec_violations.append(f"{method}: unknown parameter {name!r}")
                raise bad_request(
                    f"unknown parameter {name} (not in the Bot API spec for {method})"
                )
            params[name] = _coerce(name, value, types)
        for name in self._required[method]:
            if name not in params or params[name] in ("", None):
                if name == "text":
                    raise bad_request("message text is empty")
                if name == "chat_id":
                    raise bad_request("chat_id is empty")
                self.spec_violations.append(f"{method}: missing required parameter {name!r}")
                raise bad_request(f'parameter "{name}" is required')
        return params

    async def _unsupported(self, call: Call) -> Any:
        self.unsupported_calls.append(call)
        if self._methods[call.method].get("returns") == ["Boolean"]:
            return True
        raise ApiError(501, f"Not Implemented: {call.method} is not supported by the test double")

    # -- chats ---------------------------------------------------------------------------------

    def chat_object(self, chat_id: int) -> dict[str, Any]:
        """The Chat the double knows (from pushed updates), else one guessed from the id."""
        known = self._chats.get(chat_id)
        if known is not None and "type" in known:
            chat = {
                k: v
                for k, v in known.items()
                if k in ("id", "type", "title", "username", "first_name", "last_name", "is_forum")
            }
            if chat["type"] != "private" and "title" not in chat:
                chat["title"] = "Test group"
            if chat["type"] == "private" and "first_name" not in chat:
                chat["first_name"] = "Test"
            return chat
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Test"}
        if str(chat_id).startswith("-100"):
            return {"id": chat_id, "type": "supergroup", "title": "Test supergroup"}
        return {"id": chat_id, "type": "group", "title": "Test group"}

    def _resolve_chat(self, chat_id: Any, *, for_sending: bool = True) -> int:
        if isinstance(chat_id, str):
            resolved = self._usernames.get(chat_id.lstrip("@").lower())
            if resolved is None:
                raise bad_request("chat not found")
            chat_id = resolved
        if not isinstance(chat_id, int) or chat_id == 0:
            raise bad_request("chat not found")
        if chat_id in self._deleted_chats:
            raise bad_request("chat not found")
        if chat_id in self._migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self._migrated[chat_id]},
            )
        if for_sending and chat_id < 0:
            bot_status = self._members.get((chat_id, self.bot_id))
            kind = self.chat_object(chat_id)["type"]
            if bot_status == "kicked":
                raise ApiError(403, f"Forbidden: bot was kicked from the {kind} chat")
            if bot_status == "left":
                raise ApiError(403, f"Forbidden: bot is not a member of the {kind} chat")
            if bot_status == "restricted":
                raise bad_request("not enough rights to send text messages to the chat")
        if for_sending and self.require_start and chat_id not in self._chats:
            if chat_id > 0:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            raise bad_request("chat not found")
        if for_sending and chat_id in self._deactivated:
            raise ApiError(403, "Forbidden: user is deactivated")
        if for_sending and chat_id in self._blocked:
            kind = self.chat_object(chat_id)["type"]
            if kind == "private":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if kind == "channel":
                raise ApiError(403, "Forbidden: bot is not a member of the channel chat")
            raise ApiError(403, f"Forbidden: bot was kicked from the {kind} chat")
        return chat_id

    def _remember_ban(self, chat_id: Any, retry_after: Any) -> None:
        try:
            chat = int(chat_id)
            seconds = float(retry_after)
        except (TypeError, ValueError):
            return
        self._banned_until[chat] = max(self._banned_until.get(chat, 0.0), self._clock() + seconds)

    def _check_flood(self, chat_id: int, *, paid: bool = False) -> None:
        """429 while a retry_after given for this chat runs (recorded), or over the limits."""
        banned_until = self._banned_until.get(chat_id)
        if banned_until is not None:
            early = banned_until - self._clock()
            if early > 0:
                self.retry_after_violations.append(
                    f"chat {chat_id}: sent {early:.2f}s before its retry_after ended"
                )
                wait = max(1, math.ceil(early))
                raise _EarlyRetryError(
                    429, f"Too Many Requests: retry after {wait}", {"retry_after": wait}
                )
            del self._banned_until[chat_id]
        if not self.flood_limits:
            return
        retry_after = self._flood.retry_after(chat_id, paid=paid)
        if retry_after is not None:
            raise ApiError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )

    # -- methods -------------------------------------------------------------------------------

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(409, CONFLICT_WEBHOOK)
        offset = params.get("offset")
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            self._allowed_updates = set(allowed) if allowed else None
        if offset is not None:
            offset = int(offset)
            if offset < 0:
                while len(self._updates) > -offset:
                    self._updates.popleft()
            else:
                while self._updates and self._updates[0]["update_id"] < offset:
                    self._updates.popleft()
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()  # an older poller still waiting now ends with 409, as on Telegram
        deadline = time.monotonic() + timeout
        while True:
            ready = self._deliverable(limit)
            if ready or self._stopping:
                return ready
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._poll_waiters.add(waiter)
            try:
                await asyncio.wait({waiter}, timeout=remaining)
            finally:
                self._poll_waiters.discard(waiter)
            if generation != self._poll_generation:
                raise ApiError(409, CONFLICT_OTHER_POLL)

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        ready: list[dict[str, Any]] = []
        kept: deque[dict[str, Any]] = deque()
        for update in self._updates:
            kind = next((k for k in update if k != "update_id"), "")
            allowed = (
                kind in self._allowed_updates
                if self._allowed_updates is not None
                else kind not in _NOT_DEFAULT_UPDATES
            )
            if not allowed:
                continue  # Telegram never delivers updates of types the bot did not ask for
            kept.append(update)
            if len(ready) < limit:
                ready.append(update)
        self._updates = kept
        return ready

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = ""
        self.webhook_secret = ""
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        url = str(params["url"])
        loopback = re.match(r"^http://(127\.0\.0\.1|localhost)(:\d+)?/", url) is not None
        if url and not url.startswith("https://") and not (self.allow_http_webhooks and loopback):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = str(params.get("secret_token") or "")
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        self.webhook_url, self.webhook_secret = url, secret
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            self._allowed_updates = set(allowed) if allowed else None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._wake_webhook()
        return True

    def _wake_webhook(self) -> None:
        if not self.webhook_url:
            return
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_webhooks())
        self._webhook_wake.set()

    async def _deliver_webhooks(self) -> None:
        """Like Telegram: the oldest update first, again and again until a 2xx answer."""
        import aiohttp

        async with aiohttp.ClientSession() as http:
            while self.webhook_url and not self._stopping:
                if not self._updates:
                    self._webhook_wake.clear()
                    await self._webhook_wake.wait()
                    continue
                self._updates = deque(self._deliverable(len(self._updates)))  # as asked for
                if not self._updates:
                    continue
                update = self._updates[0]
                headers = {"Content-Type": "application/json"}
                if self.webhook_secret:
                    headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook_secret
                try:
                    async with http.post(
                        self.webhook_url,
                        data=json.dumps(update),
                        headers=headers,
                        timeout=aiohttp.ClientTimeout(total=10),
                    ) as response:
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                self.webhook_deliveries.append((int(update["update_id"]), status))
                if 200 <= status < 300:
                    if self._updates and self._updates[0] is update:
                        self._updates.remove(update)
                else:
                    await asyncio.sleep(self.webhook_retry_delay)

    def deliver_again(self, update: dict[str, Any]) -> None:
        """Queues an update that was already delivered: Telegram does when an answer is lost."""
        self._updates.append(update)
        self._wake_webhook()

    async def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    # BotCommandScope*: the type and the fields each one requires
    _COMMAND_SCOPES: ClassVar[dict[str, tuple[str, ...]]] = {
        "default": (),
        "all_private_chats": (),
        "all_group_chats": (),
        "all_chat_administrators": (),
        "chat": ("chat_id",),
        "chat_administrators": ("chat_id",),
        "chat_member": ("chat_id", "user_id"),
    }

    def _check_command_scope(self, params: dict[str, Any]) -> None:
        """As Telegram: an unknown scope type is a parse error; a chat scope needs a chat the
        bot can reach (a user who never started it is "chat not found" with require_start)."""
        scope = params.get("scope")
        if scope is None:
            return
        if not isinstance(scope, dict) or scope.get("type") not in self._COMMAND_SCOPES:
            raise bad_request("can't parse BotCommandScope JSON object")
        for name in self._COMMAND_SCOPES[scope["type"]]:
            if name not in scope:
                raise bad_request(f'field "{name}" must be of type Integer')
        if "chat_id" in scope:
            chat_id = self._resolve_chat(scope["chat_id"], for_sending=False)
            if self.require_start and chat_id not in self._chats:
                raise bad_request("chat not found")
            if scope["type"] == "chat_member" and chat_id > 0:
                raise bad_request("chat_member scope is for groups and supergroups only")

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        self._check_command_scope(params)
        commands = params["commands"]
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            description = command.get("description", "") if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(description).strip()) <= 256:
                raise bad_request("command description must be non-empty")
        self.commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        self._check_command_scope(params)
        return self.commands.get(self._commands_key(params), [])

    async def _set_chat_menu_button(self, params: dict[str, Any]) -> bool:
        chat_id = params.get("chat_id")
        if chat_id is not None and int(chat_id) <= 0:
            raise bad_request("chat not found")  # menu buttons exist in private chats only
        button = params.get("menu_button") or {"type": "default"}
        kind = button.get("type") if isinstance(button, dict) else None
        if kind not in {"commands", "web_app", "default"}:
            raise bad_request("can't parse menu button JSON object")
        if kind == "web_app":
            if not str(button.get("text") or "").strip():
                raise bad_request("menu button text must be non-empty")
            self._check_web_app(button.get("web_app"))
        self.menu_buttons[None if chat_id is None else int(chat_id)] = button
        return True

    async def _get_chat_menu_button(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        key = None if chat_id is None else int(chat_id)
        return self.menu_buttons.get(key) or self.menu_buttons.get(None) or {"type": "default"}

    async def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self._check_command_scope(params)
        self.commands.pop(self._commands_key(params), None)
        return True

    @staticmethod
    def _check_web_app(web_app: Any) -> None:
        url = web_app.get("url") if isinstance(web_app, dict) else None
        if not isinstance(url, str) or not url.lower().startswith("https://"):
            # Telegram opens Mini Apps only over https
            raise bad_request(
                f"inline keyboard button Web App URL '{url}' is invalid: "
                "Only HTTPS links are allowed"
            )

    def _check_reply_markup(self, markup: Any, chat_id: int | None = None) -> dict[str, Any] | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request(
                    "can't parse inline keyboard button: "
                    'field "inline_keyboard" must be an Array of Arrays'
                )
            if sum(len(row) for row in rows) > 100:
                raise bad_request("REPLY_MARKUP_TOO_LONG")
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not button.get("text"):
                        raise bad_request(TEXT_BUTTONS_UNALLOWED)
                    actions = [
                        k
                        for k in button
                        if k != "text" and k != "style" and k != "icon_custom_emoji_id"
                    ]
                    if not actions:
                        raise bad_request(TEXT_BUTTONS_UNALLOWED)
                    if "callback_data" in button:
                        data = button["callback_data"]
                        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                            raise bad_request("BUTTON_DATA_INVALID")
                    if "url" in button and not _LINK.match(str(button["url"])):
                        raise bad_request("BUTTON_URL_INVALID")
                    if "web_app" in button:
                        if chat_id is not None and chat_id < 0:  # private chats only
                            raise bad_request("BUTTON_TYPE_INVALID")
                        self._check_web_app(button["web_app"])
        elif not any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
            raise bad_request("can't parse reply keyboard markup JSON object")
        return markup

    def _text_and_entities(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise bad_request("message text is empty")
        entities = params.get("entities")
        if entities is not None and not isinstance(entities, list):
            raise bad_request("can't parse entities JSON object")
        plain, parsed = formatted_text(
            text, params.get("parse_mode"), entities, strict=self.strict_html
        )
        if not plain:
            raise bad_request("message text is empty")
        if utf16_len(plain) > MAX_TEXT_UTF16:
            raise bad_request("message is too long")
        return plain, parsed

    @staticmethod
    def _link_preview(params: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        options = params.get("link_preview_options")
        if options is not None and not isinstance(options, dict):
            raise bad_request("can't parse link preview options JSON object")
        if options and options.get("is_disabled"):
            return True, {"is_disabled": True}
        if params.get("disable_web_page_preview"):
            return True, {"is_disabled": True}
        return False, options

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._resolve_chat(params["chat_id"])
        plain, entities = self._text_and_entities(params)
        markup = self._check_reply_markup(params.get("reply_markup"), chat_id)
        preview_disabled, preview = self._link_preview(params)
        reply = params.get("reply_parameters")
        if reply_to := params.get("reply_to_message_id"):
            reply = {"message_id": reply_to}
        if reply is not None:
            if not isinstance(reply, dict) or "message_id" not in reply:
                raise bad_request("can't parse reply parameters JSON object")
            if (chat_id, int(reply["message_id"])) not in self._messages and not reply.get(
                "allow_sending_without_reply"
            ):
                raise bad_request("message to be replied not found")
        thread_id = params.get("message_thread_id")
        if thread_id and (chat_id, thread_id) in self._deleted_topics:
            raise bad_request("message thread not found")
        if thread_id and (chat_id, thread_id) in self._closed_topics:
            raise bad_request("TOPIC_CLOSED")
        self._check_flood(chat_id, paid=bool(params.get("allow_paid_broadcast")))

        chat = self.chat_object(chat_id)
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": self.bot_user,
            "chat": chat,
            "date": int(time.time()),
            "text": plain,
        }
        if thread_id:
            message["message_thread_id"] = thread_id
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        if entities:
            message["entities"] = entities
        if preview:
            message["link_preview_options"] = preview
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        if reply is not None and (chat_id, int(reply["message_id"])) in self._messages:
            message["reply_to_message"] = self._messages[
                (chat_id, int(reply["message_id"]))
            ].message
        self._messages[(chat_id, message["message_id"])] = _StoredMessage(message, from_bot=True)
        self.sent.append(
            SentMessage(
                chat_id=chat_id,
                message_id=message["message_id"],
                text=plain,
                html=params["text"],
                parse_mode=params.get("parse_mode"),
                message_thread_id=thread_id,
                reply_markup=markup,
                link_preview_disabled=preview_disabled,
                at=self._clock(),
                entities=entities,
                disable_notification=bool(params.get("disable_notification")),
                paid_broadcast=bool(params.get("allow_paid_broadcast")),
            )
        )
        return message

    def _message_to_edit(self, params: dict[str, Any], missing: str) -> tuple[int, _StoredMessage]:
        if params.get("inline_message_id"):
            raise ApiError(
                501, "Not Implemented: inline messages are not supported by the test double"
            )
        if "chat_id" not in params or "message_id" not in params:
            raise bad_request(
                "chat_id is empty"
                if "chat_id" not in params
                else "message identifier is not specified"
            )
        chat_id = self._resolve_chat(params["chat_id"], for_sending=False)
        stored = self._messages.get((chat_id, int(params["message_id"])))
        if stored is None:
            raise bad_request(missing)
        if not stored.from_bot:
            raise bad_request("message can't be edited")
        return chat_id, stored

    def _record_edit(
        self, chat_id: int, message: dict[str, Any], params: dict[str, Any], method: str
    ) -> None:
        markup = message.get("reply_markup")
        self.edited.append(
            SentMessage(
                chat_id=chat_id,
                message_id=message["message_id"],
                text=message.get("text", ""),
                html=params.get("text", ""),
                parse_mode=params.get("parse_mode"),
                message_thread_id=message.get("message_thread_id"),
                reply_markup=markup,
                link_preview_disabled=bool(
                    message.get("link_preview_options", {}).get("is_disabled")
                ),
                at=self._clock(),
                entities=message.get("entities", []),
                method=method,
            )
        )

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, stored = self._message_to_edit(params, "message to edit not found")
        if chat_id in self._blocked:
            self._resolve_chat(chat_id)
        plain, entities = self._text_and_entities(params)
        markup = self._check_reply_markup(params.get("reply_markup"))
        inline_markup = markup if markup and "inline_keyboard" in markup else None
        old = stored.message
        if (
            old.get("text") == plain
            and old.get("entities", []) == entities
            and old.get("reply_markup") == inline_markup
        ):
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        self._check_flood(chat_id)
        _, preview = self._link_preview(params)
        message = {
            k: v
            for k, v in old.items()
            if k not in ("entities", "reply_markup", "link_preview_options")
        }
        message.update({"text": plain, "edit_date": int(time.time())})
        if entities:
            message["entities"] = entities
        if inline_markup:
            message["reply_markup"] = inline_markup
        if preview:
            message["link_preview_options"] = preview
        stored.message = message
        self._record_edit(chat_id, message, params, "editMessageText")
        return message

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, stored = self._message_to_edit(params, "message to edit not found")
        markup = self._check_reply_markup(params.get("reply_markup"))
        inline_markup = markup if markup and "inline_keyboard" in markup else None
        if stored.message.get("reply_markup") == inline_markup:
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        self._check_flood(chat_id)
        message = {k: v for k, v in stored.message.items() if k != "reply_markup"}
        message["edit_date"] = int(time.time())
        if inline_markup:
            message["reply_markup"] = inline_markup
        stored.message = message
        self._record_edit(chat_id, message, params, "editMessageReplyMarkup")
        return message

    async def _delete_message(self, params: dict[str, Any]) -> bool:
        chat_id = self._resolve_chat(params["chat_id"], for_sending=False)
        key = (chat_id, int(params["message_id"]))
        if key not in self._messages:
            raise bad_request("message to delete not found")
        del self._messages[key]
        self.deleted.append(key)
        return True

    async def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = str(params["callback_query_id"])
        if self._callback_ids.get(query_id, True):
            raise bad_request(QUERY_TOO_OLD.removeprefix("Bad Request: "))
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._callback_ids[query_id] = True
        self.callback_answers.append(
            CallbackAnswer(
                callback_query_id=query_id,
                text=text,
                show_alert=bool(params.get("show_alert")),
                url=params.get("url"),
                at=self._clock(),
            )
        )
        return True

    def member_status(self, chat_id: int, user_id: int) -> str:
        """The status getChatMember answers (see the module doc for the default)."""
        if (chat_id, user_id) in self._members:
            return self._members[(chat_id, user_id)]
        if chat_id > 0:
            return "member" if user_id in (chat_id, self.bot_id) else "left"
        if user_id == self.bot_id or (chat_id, user_id) in self._seen_members:
            return "member"
        return "left"

    def _chat_member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        status = self.member_status(chat_id, user_id)
        user = self.bot_user if user_id == self.bot_id else self._user(user_id)
        return self._member_object(status, user)

    def _member_object(self, status: str, user: dict[str, Any]) -> dict[str, Any]:
        """A ChatMember of this status with every field the spec requires for its type."""
        member: dict[str, Any] = {"status": status, "user": user}
        type_name = {
            "creator": "ChatMemberOwner",
            "administrator": "ChatMemberAdministrator",
            "restricted": "ChatMemberRestricted",
            "kicked": "ChatMemberBanned",
        }.get(status)
        if type_name is None:
            return member
        for spec_field in self.spec["types"][type_name]["fields"]:
            name = spec_field["name"]
            if name in member or (not spec_field["required"] and not name.startswith("can_")):
                continue
            if spec_field["types"] == ["Boolean"]:
                if status == "administrator":
                    member[name] = name.startswith("can_") and name != "can_be_edited"
                elif status == "restricted":
                    member[name] = name == "is_member"
                else:
                    member[name] = False
            elif spec_field["types"] == ["Integer"]:
                member[name] = 0
        return member

    async def _get_chat_member(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._resolve_chat(params["chat_id"], for_sending=False)
        user_id = int(params["user_id"])
        return self._chat_member(chat_id, user_id)

    async def _get_chat_administrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        chat_id = self._resolve_chat(params["chat_id"], for_sending=False)
        if chat_id > 0:
            raise bad_request("there are no administrators in the private chat")
        return [
            self._chat_member(chat_id, user_id)
            for (member_chat, user_id), status in self._members.items()
            if member_chat == chat_id and status in ("creator", "administrator")
        ]

    async def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._resolve_chat(params["chat_id"], for_sending=False)
        gift_types = {f["name"]: False for f in self.spec["types"]["AcceptedGiftTypes"]["fields"]}
        return {
            **self.chat_object(chat_id),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gift_types,
        }

    async def _send_chat_action(self, params: dict[str, Any]) -> bool:
        chat_id = self._resolve_chat(params["chat_id"])
        if params["action"] not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.chat_actions.append((chat_id, params["action"]))
        return True


class _PlannedError(ApiError):
    """An error planned by fail_next (its 429s are not flood control's: not counted)."""


class _EarlyRetryError(ApiError):
    """A 429 for sending before retry_after ended (it does not extend the running wait)."""


# ---------------------------------------------------------------------------------------------
# HTTP helpers


def _answer_error(error: ApiError) -> web.Response:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": error.status,
        "description": error.description,
    }
    if error.parameters:
        body["parameters"] = error.parameters
    return web.Response(
        body=json.dumps(body).encode(), status=error.status, content_type="application/json"
    )


def _drop_connection(request: web.Request) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)  # never reaches the client: the connection is gone


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string plus a form-encoded, multipart or JSON body, like Telegram reads them."""
    params: dict[str, Any] = dict(request.query)
    if not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            raise ValueError(f"can't parse JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError("JSON body must be an object")
        params.update(body)
        return params
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            params[name] = {"file_name": value.filename, "size": len(value.file.read())}
        else:
            params[name] = value
    return params


def _coerce(name: str, value: Any, types: list[str]) -> Any:
    """A form value (a string; non-strings JSON-encoded by PTB) as the spec's type for the field."""
    if not isinstance(value, str):
        return value
    if types in (["String"], ["InputFile", "String"], ["String", "InputFile"]):
        return value
    if "Integer" in types and "String" in types:
        return int(value) if re.fullmatch(r"-?\d+", value.strip()) else value
    if types == ["Integer"]:
        try:
            return int(value)
        except ValueError:
            raise bad_request(f"invalid {name} specified") from None
    if types in (["Float"], ["Float number"]):
        try:
            return float(value)
        except ValueError:
            raise bad_request(f"invalid {name} specified") from None
    if types == ["Boolean"]:
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0", ""):
            return False
        raise bad_request(f"invalid {name} specified")
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if "String" in types:
            return value
        raise bad_request(f"can't parse {name} JSON object") from None
