"""Telegram HTML: escaping feed text, and the one judge of Telegram's HTML rules.

Every part of the bot (broadcasts, digests) and every test (the Bot API double included)
asks this module whether Telegram accepts a text, and how long Telegram counts it.
`check_telegram_html` follows the Bot API's documented rules, a little stricter where
Telegram would silently do something else: a bare `&` must be `&amp;` (as the Bot API says;
Telegram's parser guesses, and `&amp` without `;` becomes `&`), an attribute Telegram ignores
is refused. The error names the first problem and where it is, in one line.
"""

from __future__ import annotations

import re

MAX_MESSAGE_UTF16 = 4096

# tag -> attributes Telegram reads on it (others are ignored by Telegram, and by us)
_TAGS: dict[str, frozenset[str]] = {
    "b": frozenset(),
    "strong": frozenset(),
    "i": frozenset(),
    "em": frozenset(),
    "u": frozenset(),
    "ins": frozenset(),
    "s": frozenset(),
    "strike": frozenset(),
    "del": frozenset(),
    "span": frozenset({"class"}),
    "tg-spoiler": frozenset(),
    "a": frozenset({"href"}),
    "code": frozenset({"class"}),
    "pre": frozenset(),
    "blockquote": frozenset({"expandable"}),
    "tg-emoji": frozenset({"emoji-id"}),
    "tg-time": frozenset({"unix", "format"}),
}
_ALLOWED_HINT = "use <b>, <i>, <u>, <s>, <a href>, <code>, <pre>, <blockquote>"
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTRIBUTE = re.compile(
    r"""\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`/]+)))?"""
)
_ENTITY = re.compile(r"&(#[0-9]{1,8}|#[xX][0-9A-Fa-f]{1,7}|[A-Za-z][A-Za-z0-9]{0,31});")
_AMPERSAND = re.compile("&")


class TelegramHTMLError(ValueError):
    """Text that Telegram's HTML parse mode would refuse; str() is one English line saying where
    and why (what Telegram's own error would say). `key` and `params` name the bot's reply to
    the person in bot.i18n (html_*), in their language."""

    def __init__(self, message: str, key: str = "html_invalid", **params: object) -> None:
        super().__init__(message)
        self.key = key
        self.params = params


def escape(text: str) -> str:
    """Escapes text for Telegram HTML (only &lt; &gt; &amp; &quot; are understood there)."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's 4096 limit (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _decode_entities(text: str, offset: int) -> str:
    """`text` with its entities decoded; TelegramHTMLError for an entity Telegram does not know."""
    if "&" not in text:
        return text
    out: list[str] = []
    pos = 0
    for amp in _AMPERSAND.finditer(text):
        if amp.start() < pos:
            continue  # inside an entity already decoded
        where = offset + amp.start() + 1
        m = _ENTITY.match(text, amp.start())
        if m is None:
            raise TelegramHTMLError(
                f"a bare '&' at character {where}: write &amp; for a literal &",
                "html_bare_ampersand",
                where=where,
            )
        out.append(text[pos : m.start()])
        name = m.group(1)
        if name.startswith("#"):
            number = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
            if number == 0 or number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
                raise TelegramHTMLError(
                    f"invalid character reference &{name}; at character {where}",
                    "html_bad_entity",
                    entity=f"&{name};",
                    where=where,
                )
            out.append(chr(number))
        elif name in _NAMED_ENTITIES:
            out.append(_NAMED_ENTITIES[name])
        else:
            raise TelegramHTMLError(
                f"unsupported entity &{name}; at character {where}: "
                "only &lt; &gt; &amp; &quot; and numeric ones like &#160; work",
                "html_bad_entity",
                entity=f"&{name};",
                where=where,
            )
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def _check_attributes(tag: str, attrs: dict[str, str], where: int) -> None:
    if tag == "a" and not attrs.get("href", "").strip():
        raise TelegramHTMLError(
            f'tag <a> at character {where} needs href="…"',
            "html_tag_needs",
            tag="a",
            attribute='href="…"',
            where=where,
        )
    if tag == "span" and attrs.get("class") != "tg-spoiler":
        raise TelegramHTMLError(
            f'tag <span> at character {where} needs class="tg-spoiler"',
            "html_tag_needs",
            tag="span",
            attribute='class="tg-spoiler"',
            where=where,
        )
    if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
        raise TelegramHTMLError(
            f'tag <tg-emoji> at character {where} needs emoji-id="<number>"',
            "html_tag_needs",
            tag="tg-emoji",
            attribute='emoji-id="<number>"',
            where=where,
        )
    if tag == "tg-time" and not attrs.get("unix", "").isdigit():
        raise TelegramHTMLError(
            f'tag <tg-time> at character {where} needs unix="<timestamp>"',
            "html_tag_needs",
            tag="tg-time",
            attribute='unix="<timestamp>"',
            where=where,
        )


def _check_nesting(tag: str, open_tags: list[str], where: int) -> None:
    """Bot API nesting rules: code/pre hold plain text; no link in a link, no quote in a quote."""
    for outer in open_tags:
        if outer == "code" or (outer == "pre" and tag != "code"):
            raise TelegramHTMLError(
                f"tag <{tag}> at character {where} is inside <{outer}>, "
                "which holds plain text only",
                "html_nested",
                tag=tag,
                outer=outer,
                where=where,
            )
    if tag in {"a", "blockquote"} and tag in open_tags:
        raise TelegramHTMLError(
            f"tag <{tag}> at character {where} is inside another <{tag}>",
            "html_nested",
            tag=tag,
            outer=tag,
            where=where,
        )


def check_telegram_html(text: str) -> None:
    """Raises TelegramHTMLError unless Telegram's HTML parse mode accepts `text`.

    Only b strong i em u ins s strike del span.tg-spoiler tg-spoiler a code pre blockquote
    tg-emoji tg-time; tags balanced and properly nested; only &lt; &gt; &amp; &quot; and
    numeric entities, no bare &; 1..4096 UTF-16 units of text after parsing. Positions are
    1-based.
    """
    parsed = visible_text(text)
    if not parsed.strip():
        raise TelegramHTMLError("the message has no text", "html_empty")
    size = utf16_len(parsed)
    if size > MAX_MESSAGE_UTF16:
        raise TelegramHTMLError(
            f"the message is {size} characters (UTF-16 units) after parsing; "
            f"the limit is {MAX_MESSAGE_UTF16}",
            "html_too_long",
            size=size,
            limit=MAX_MESSAGE_UTF16,
        )


def visible_length(text: str) -> int:
    """What Telegram counts against its 4096 limit: UTF-16 units of the text after parsing."""
    return utf16_len(visible_text(text))


def visible_text(text: str) -> str:
    """The text a reader sees (tags removed, entities decoded); TelegramHTMLError if invalid.

    Checks every rule of `check_telegram_html` except the length and "no text".
    """
    plain: list[str] = []
    open_tags: list[str] = []
    pos = 0
    length = len(text)
    while pos < length:
        lt = text.find("<", pos)
        chunk_end = length if lt < 0 else lt
        plain.append(_decode_entities(text[pos:chunk_end], pos))
        if lt < 0:
            break
        where = lt + 1
        closing = text.startswith("</", lt)
        name_match = _TAG_NAME.match(text, lt + (2 if closing else 1))
        if name_match is None:
            raise TelegramHTMLError(
                f"a bare '<' at character {where}: write &lt; for a literal <",
                "html_bare_lt",
                where=where,
            )
        # Telegram lower-cases a start tag's name but compares an end tag's name as written
        tag = name_match.group(0) if closing else name_match.group(0).lower()
        gt = text.find(">", name_match.end())
        if gt < 0:
            raise TelegramHTMLError(
                f"tag <{tag}> at character {where} is not closed with '>'",
                "html_tag_unclosed",
                tag=tag,
                where=where,
            )
        if tag.lower() not in _TAGS:
            raise TelegramHTMLError(
                f"unsupported tag <{tag}> at character {where}: {_ALLOWED_HINT}",
                "html_unsupported_tag",
                tag=tag,
                where=where,
            )
        if closing:
            if text[name_match.end() : gt].strip():
                raise TelegramHTMLError(
                    f"closing tag </{tag}> at character {where} has extra text",
                    "html_closing_tag",
                    tag=tag,
                    where=where,
                )
            if not open_tags:
                raise TelegramHTMLError(
                    f"closing tag </{tag}> at character {where} has no opening tag",
                    "html_closing_tag",
                    tag=tag,
                    where=where,
                )
            if open_tags[-1] != tag:
                raise TelegramHTMLError(
                    f"closing tag </{tag}> at character {where} "
                    f"does not match the open <{open_tags[-1]}>",
                    "html_closing_tag",
                    tag=tag,
                    where=where,
                )
            open_tags.pop()
        else:
            attrs = _parse_attributes(text, name_match.end(), gt, tag, where)
            _check_attributes(tag, attrs, where)
            _check_nesting(tag, open_tags, where)
            open_tags.append(tag)
        pos = gt + 1
    if open_tags:
        raise TelegramHTMLError(
            f"tag <{open_tags[-1]}> is never closed: add </{open_tags[-1]}>",
            "html_never_closed",
            tag=open_tags[-1],
        )
    return "".join(plain)


def _parse_attributes(text: str, start: int, end: int, tag: str, where: int) -> dict[str, str]:
    """Attributes between a tag's name and its '>' (entities in values decoded)."""
    attrs: dict[str, str] = {}
    pos = start
    body_end = end - 1 if end > start and text[end - 1] == "/" else end
    while pos < body_end:
        if text[pos:body_end].isspace():
            break
        m = _ATTRIBUTE.match(text, pos, body_end)
        if m is None or m.end() == pos:
            raise TelegramHTMLError(
                f"malformed attributes in tag <{tag}> at character {where}",
                "html_bad_attributes",
                tag=tag,
                where=where,
            )
        name = m.group(1).lower()
        raw = next((g for g in m.group(2, 3, 4) if g is not None), "")
        if name not in _TAGS[tag]:
            allowed = ", ".join(sorted(_TAGS[tag])) or "none"
            raise TelegramHTMLError(
                f"attribute {name!r} is not allowed in tag <{tag}> at character {where} "
                f"(allowed: {allowed})",
                "html_attribute_not_allowed",
                attribute=name,
                tag=tag,
                where=where,
            )
        attrs[name] = _decode_entities(raw, m.start())
        pos = m.end()
    return attrs
