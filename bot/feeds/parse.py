"""Feed bytes → entries with feedparser, safely.

- feedparser gets `io.BytesIO(body)`, never bytes: bytes that look like a path are opened as a
  local file (a server answering `/etc/passwd` would make us read it).
- The DOCTYPE is stripped first: feedparser keeps "safe" internal entities, and one 10 KB
  entity referenced 12,000 times becomes a 120 MB title. Without the DOCTYPE those
  references are undefined and stay small.
- A body that declares no charset (neither HTTP nor XML) and is not UTF-8 gets one detected
  with charset-normalizer: feedparser alone falls back to windows-1252 (Big5, GB2312 mojibake).
- feedparser's HTML sanitiser is off: we keep plain text only (normalise.py drops every tag,
  script and style), so sanitising would be a second HTML parse for nothing.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import charset_normalizer
import feedparser

from bot.feeds.errors import FeedError
from bot.feeds.identity import canonical_link, fingerprint
from bot.feeds.normalise import (
    NormalisedItem,
    clean_text,
    language_tag,
    normalise_entry,
    one_line,
)

log = logging.getLogger(__name__)

_DOCTYPE_START = re.compile(rb"<!doctype", re.IGNORECASE)
_ELEMENT_START = re.compile(rb"<[A-Za-z_]")
_XML_ENCODING = re.compile(r"""(<\?xml[^>]*?encoding\s*=\s*)(["'])[^"']*\2""", re.IGNORECASE)
_HTML_ROOT = re.compile(rb"<html[\s>]", re.IGNORECASE)
_PROLOG_NOISE = re.compile(rb"(?:\s|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_XML_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?\bencoding\s*=", re.IGNORECASE)
_CHARSET_PARAM = re.compile(r";\s*charset\s*=\s*[\"']?[A-Za-z0-9._:-]+", re.IGNORECASE)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


@dataclass
class ParsedFeed:
    """What a feed document says about itself, and its entries as we store them."""

    title: str | None
    language: str | None
    ttl_seconds: int | None  # RSS <ttl> (minutes in the feed)
    items: list[NormalisedItem] = field(default_factory=list)
    entry_count: int = 0  # entries in the document, before dropping empty ones
    bozo_reason: str | None = None


def _to_utf8_if_wide(body: bytes) -> bytes:
    """UTF-16/32 documents re-encoded as UTF-8 so the byte-level DOCTYPE scan sees them."""
    head = body[:4]
    codec: str | None = None
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        codec = "utf-32"
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16"
    elif head.startswith(b"<\x00?\x00") or head.startswith(b"<\x00<\x00"):
        codec = "utf-16-le"
    elif head.startswith(b"\x00<\x00?") or head.startswith(b"\x00<\x00<"):
        codec = "utf-16-be"
    if codec is None:
        return body
    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        return body
    text = _XML_ENCODING.sub(r"\1\2utf-8\2", text.lstrip("\ufeff"), count=1)
    return text.encode("utf-8")


def _charref_value(match: re.Match[bytes]) -> int:
    hex_digits, decimal = match.groups()
    return int(hex_digits, 16) if hex_digits else int(decimal)


def fix_surrogate_charrefs(body: bytes) -> bytes:
    """`&#55357;&#56832;` (a UTF-16 pair written as two references) → one reference to 😀;
    a lone half → U+FFFD. feedparser's loose parser raises UnicodeEncodeError on them."""
    if b"&#" not in body:
        return body
    out: list[bytes] = []
    pos = 0
    pending: re.Match[bytes] | None = None  # a high surrogate waiting for its low half
    for match in _CHARREF.finditer(body):
        value = _charref_value(match)
        if pending is not None:
            out.append(body[pos : pending.start()])
            if match.start() == pending.end() and 0xDC00 <= value <= 0xDFFF:
                high = _charref_value(pending)
                out.append(b"&#%d;" % (0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00)))
                pos, pending = match.end(), None
                continue
            out.append(b"&#65533;")
            pos, pending = pending.end(), None
        if 0xD800 <= value <= 0xDBFF:
            pending = match
        elif 0xDC00 <= value <= 0xDFFF or value > 0x10FFFF:
            out.append(body[pos : match.start()])
            out.append(b"&#65533;")
            pos = match.end()
    if pending is not None:
        out.append(body[pos : pending.start()])
        out.append(b"&#65533;")
        pos = pending.end()
    if not out:
        return body
    out.append(body[pos:])
    return b"".join(out)


def _end_of_doctype(body: bytes, start: int) -> int:
    """Index just past the DOCTYPE that starts at `start` (internal subset and quotes included)."""
    i, n = start + 9, len(body)
    in_subset = False
    while i < n:
        c = body[i]
        if c in (0x22, 0x27):  # a quoted string may hold '>' or ']'
            close = body.find(bytes([c]), i + 1)
            i = n if close < 0 else close + 1
            continue
        if body.startswith(b"<!--", i):
            close = body.find(b"-->", i + 4)
            i = n if close < 0 else close + 3
            continue
        if c == 0x5B:  # [
            in_subset = True
        elif c == 0x5D:  # ]
            in_subset = False
        elif c == 0x3E and not in_subset:  # >
            return i + 1
        i += 1
    return n


def strip_doctype(body: bytes) -> bytes:
    """`body` without its DOCTYPE declaration (and the entities it declares)."""
    match = _DOCTYPE_START.search(body, 0, 65536)
    if match is None:
        return body
    first_element = _ELEMENT_START.search(body, 0, match.start())
    if first_element is not None:  # "<!DOCTYPE" inside the document (e.g. in CDATA) is text
        return body
    return body[: match.start()] + body[_end_of_doctype(body, match.start()) :]


def looks_like_html_page(body: bytes) -> bool:
    """True when the root element is <html>: a web page (an XHTML DOCTYPE alone is not enough)."""
    head = body[:8192].lstrip(b"\xef\xbb\xbf")
    prolog = _PROLOG_NOISE.match(head)
    start = prolog.end() if prolog else 0
    if head[start : start + 9].lower() == b"<!doctype":
        start = _end_of_doctype(head, start)
        prolog = _PROLOG_NOISE.match(head, start)
        start = prolog.end() if prolog else start
    return _HTML_ROOT.match(head, start) is not None


def undeclared_charset(body: bytes, content_type: str) -> str | None:
    """The charset of a body that declares none (no HTTP charset, no BOM, no XML encoding)
    and is not UTF-8 (XML's default), as detected; None when the body says it itself."""
    if _CHARSET_PARAM.search(content_type) or body.startswith(_BOMS):
        return None
    if _XML_DECLARED_ENCODING.match(body[:1024]):
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return None
    best = charset_normalizer.from_bytes(body).best()
    return best.encoding if best is not None else None


def _ttl_seconds(feed: Any) -> int | None:
    raw = feed.get("ttl")
    try:
        minutes = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return minutes * 60 if minutes > 0 else None


def parse_feed(body: bytes, *, url: str, content_type: str, now: datetime) -> ParsedFeed:
    """Parses and normalises a feed body (a valid feed may have no items); FeedError
    (not_a_feed, unparseable, empty: entries with nothing in them) otherwise.

    `url` is the final URL (after redirects): the base for relative links. CPU-bound: run it
    with `asyncio.to_thread`.
    """
    if looks_like_html_page(body):
        kind = content_type.split(";", 1)[0].strip() or "no content type"
        raise FeedError("not_a_feed", f"the server sent an HTML page ({kind})")
    if b"<" not in body[:4096]:
        kind = content_type.split(";", 1)[0].strip() or "no content type"
        raise FeedError("not_a_feed", f"the server sent no XML ({kind}, {len(body)} bytes)")
    safe_body = fix_surrogate_charrefs(strip_doctype(_to_utf8_if_wide(body)))
    content_type = content_type or "application/xml"
    detected = undeclared_charset(safe_body, content_type)
    if detected is not None:
        content_type = f"{content_type.split(';', 1)[0].strip()}; charset={detected}"
    headers = {"content-location": url, "content-type": content_type}
    parsed = feedparser.parse(
        io.BytesIO(safe_body),
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    bozo_reason = None
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        bozo_reason = one_line(f"{type(exc).__name__}: {exc}" if exc else "ill-formed")[:300]
    entries = parsed.entries
    if not entries:
        if bozo_reason and not parsed.get("version"):
            raise FeedError(
                "unparseable", one_line(str(parsed.get("bozo_exception") or bozo_reason))[:300]
            )
        if not parsed.get("version") and "html" in content_type.lower():
            raise FeedError(
                "not_a_feed", f"the server sent an HTML page ({content_type.split(';')[0]})"
            )
        if not parsed.get("version"):
            raise FeedError("not_a_feed", "the document is XML but neither RSS nor Atom")
        # a valid feed with no items yet is healthy: its first items will be news
    if bozo_reason:
        log.debug("feed %s is ill-formed but usable: %s", url, bozo_reason)

    feed = parsed.feed
    feed_language = language_tag(feed.get("language"))
    items = []
    for entry in entries:
        item = normalise_entry(entry, base_url=url, feed_language=feed_language, now=now)
        if item is not None:
            items.append(item)
    if entries and not items:
        raise FeedError("empty", f"the feed's {len(entries)} entries have no title, text or link")
    for item in items:
        item.canonical_link = canonical_link(item.link)
        item.fingerprint = fingerprint(item.title, item.body, item.canonical_link)
    title = one_line(clean_text(str(feed.get("title") or "")))[:500] or None
    return ParsedFeed(
        title=title,
        language=feed_language,
        ttl_seconds=_ttl_seconds(feed),
        items=items,
        entry_count=len(entries),
        bozo_reason=bozo_reason,
    )
