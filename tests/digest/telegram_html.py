"""A small, strict checker of Telegram's HTML parse mode, for the digest tests.

Only Telegram's tags (with `href` on <a>, class="tg-spoiler" on <span>), properly nested, and
only the entities &lt; &gt; &amp; &quot; and numeric ones; no bare < or > in text.
"""

from __future__ import annotations

import re

ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "code", "pre", "blockquote", "tg-emoji", "tg-time",
}  # fmt: skip
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+=\"[^\"<>]*\")*)\s*>")
_ATTRIBUTE = re.compile(r"([a-zA-Z-]+)=\"([^\"<>]*)\"")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")


class HTMLRuleError(AssertionError):
    pass


def _check_text(text: str, where: int) -> None:
    if "<" in text or ">" in text:
        raise HTMLRuleError(f"bare < or > at {where}: {text[:60]!r}")
    position = text.find("&")
    while position != -1:
        if not _ENTITY.match(text, position):
            raise HTMLRuleError(
                f"entity not allowed at {where + position}: {text[position : position + 12]!r}"
            )
        position = text.find("&", position + 1)


def check_html(text: str) -> None:
    """Raises HTMLRuleError where Telegram would answer "can't parse entities"."""
    open_tags: list[str] = []
    position = 0
    for tag in _TAG.finditer(text):
        _check_text(text[position : tag.start()], position)
        closing, name, attributes = tag.group(1), tag.group(2).lower(), tag.group(3)
        if name not in ALLOWED_TAGS:
            raise HTMLRuleError(f"tag <{name}> not allowed")
        if closing:
            if not open_tags or open_tags[-1] != name:
                raise HTMLRuleError(f"</{name}> closes {open_tags[-1:] or 'nothing'}")
            open_tags.pop()
        else:
            for attribute, value in _ATTRIBUTE.findall(attributes):
                if (name, attribute) not in {
                    ("a", "href"),
                    ("span", "class"),
                    ("tg-emoji", "emoji-id"),
                }:
                    raise HTMLRuleError(f"attribute {attribute} not allowed on <{name}>")
                _check_text(value, tag.start())
            open_tags.append(name)
        position = tag.end()
    _check_text(text[position:], position)
    if open_tags:
        raise HTMLRuleError(f"unclosed tags {open_tags}")


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def visible_text(text: str) -> str:
    """The text a reader sees: tags removed, entities decoded."""
    import html

    return html.unescape(_TAG.sub("", text))
