"""Feed entries → plain releases: text from HTML, absolute links, UTC times, summary, language.

Everything here is pure and CPU-bound (no I/O), so the poller runs it in a worker thread
together with parsing.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

from bot.urls import is_http_url

SUMMARY_MAX_CHARS = 160
TITLE_MAX_CHARS = 1000  # a title longer than this is not a title; keep digests readable
BODY_MAX_CHARS = 200_000
FUTURE_TOLERANCE = timedelta(days=1)
# Earlier than this is a placeholder (Go's zero time "0001-01-01" from Hugo & co.), not a date
EARLIEST_DATE = datetime(1970, 1, 2, tzinfo=UTC)

# Tags after which the text continues on a new line (paragraphs kept as line breaks).
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "caption",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
# Their content is never text a reader sees.
_SKIPPED_TAGS = frozenset(
    {"script", "style", "noscript", "template", "head", "title", "iframe", "object", "svg"}
)
_SPACES = re.compile(r"[^\S\n]+")  # whitespace except newlines (includes \xa0 and \u3000)
_NEWLINES = re.compile(r"\s*\n\s*")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
# Never stored: C0/C1 controls but tab and newlines (PostgreSQL refuses NUL in text), lone
# surrogates (not encodable), non-characters, and bidi embeddings/overrides/isolates, which
# would reorder the digest line they are in.
_UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
# The tags a feed title may carry as markup; any other "<…>" in a title is text.
_TITLE_TAG = re.compile(
    r"</?(?:a|abbr|b|big|br|cite|code|del|div|em|font|i|img|ins|mark|p|q|s|small|span|"
    r"strike|strong|sub|sup|time|u|wbr)(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_CJK_SENTENCE_END = "。！？"
# A Latin sentence ends at . ! ? (maybe closed by a quote or bracket) before a capital or digit.
_LATIN_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "no",
        "nos",
        "vs",
        "etc",
        "inc",
        "ltd",
        "co",
        "jr",
        "sr",
        "gov",
        "sen",
        "rep",
    }
)


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML fragment, one line per block."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and alt.strip() and not self._skip_depth:
                self.parts.append(f" {alt.strip()} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag == "img":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            # in HTML a newline in the source is just a space; only blocks break lines
            self.parts.append(data.replace("\r", " ").replace("\n", " "))


def tidy_text(text: str) -> str:
    """Collapses spaces inside each line and drops empty lines."""
    text = _SPACES.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment: no tags, entities decoded, one line per paragraph."""
    if "<" not in fragment:
        # Plain text (maybe with entities): no parser needed; a blank line ends a paragraph
        text = html.unescape(fragment) if "&" in fragment else fragment
        paragraphs = _PARAGRAPH_BREAK.split(text.replace("\r", ""))
        return tidy_text("\n".join(p.replace("\n", " ") for p in paragraphs))
    extractor = _TextExtractor()
    extractor.feed(fragment)
    extractor.close()
    return tidy_text("".join(extractor.parts))


def clean_text(text: str) -> str:
    """`text` without the characters we never store or send (controls, lone surrogates, bidi)."""
    return _UNSAFE_CHARS.sub("", text)


def one_line(text: str) -> str:
    """Whitespace (newlines included) collapsed to single spaces."""
    return " ".join(text.split())


def cut_at_word(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else cut at a word boundary with "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if _CJK.search(head[-20:]):  # no spaces between CJK words: cut at a character
        return head.rstrip() + "…"
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:-–—") + "…"


def lead_sentence(text: str) -> str:
    """The first sentence of `text` (Latin or Chinese), not cut."""
    cjk_end = min(
        (i for i in (text.find(mark) for mark in _CJK_SENTENCE_END) if i >= 0), default=-1
    )
    for match in _LATIN_SENTENCE_END.finditer(text):
        before = text[: match.start()].rsplit(None, 1)
        last_word = before[-1].lower().strip("\"'(“‘") if before else ""
        # "Dr Chan", "U.S. officials" and "No. 3" are not the end of a sentence
        if (
            last_word in _ABBREVIATIONS
            or (len(last_word) <= 2 and "." in last_word)
            or (len(last_word) == 1 and last_word.isalpha())
        ):
            continue
        if cjk_end >= 0 and cjk_end < match.start():
            break
        return text[: match.start() + 1].strip()
    if cjk_end >= 0:
        return text[: cjk_end + 1].strip()
    return text.strip()


def make_summary(body: str, title: str, limit: int = SUMMARY_MAX_CHARS) -> str:
    """The lead sentence of the body (else the title), at most `limit` characters."""
    lines = [line for line in body.split("\n") if line.strip()]
    # "The following is issued on behalf of ...:" / "下稿代...發出：" only introduce
    while len(lines) > 1 and lines[0].rstrip().endswith((":", "：", "︰")):
        lines.pop(0)
    source = lines[0] if lines else title
    return cut_at_word(lead_sentence(one_line(source)), limit)


# The most frequent short words of each language: enough to tell Latin-script languages apart.
_STOPWORDS = {
    "en": frozenset({"the", "and", "of", "to", "is", "in", "for", "that", "with", "was", "on"}),
    "de": frozenset({"der", "die", "und", "das", "ist", "nicht", "für", "mit", "den", "von", "zu"}),
    "fr": frozenset({"le", "la", "les", "et", "des", "est", "une", "du", "pour", "dans", "que"}),
    "es": frozenset({"el", "los", "las", "y", "del", "que", "por", "una", "con", "para", "es"}),
    "pt": frozenset({"o", "os", "e", "do", "da", "que", "não", "uma", "com", "para", "em"}),
}
_WORD = re.compile(r"[^\W\d_]+")


def detect_language(text: str) -> str | None:
    """ "zh", "ja", "ko", or a Latin-script language (default "en"); None without letters."""
    sample = text[:2000]
    cjk = len(_CJK.findall(sample))
    latin = len(_LATIN.findall(sample))
    if cjk == 0 and latin == 0:
        return None
    if cjk * 2 >= latin:  # one CJK character carries about as much as a Latin word
        if _HANGUL.search(sample):
            return "ko"
        if _KANA.search(sample):
            return "ja"
        return "zh"
    words = [w.lower() for w in _WORD.findall(sample[:600])]
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] > scores["en"] else "en"


def language_tag(value: object) -> str | None:
    """ "en-HK", "en_US", "ZH" → "en", "en", "zh"; anything else → None."""
    if not isinstance(value, str):
        return None
    primary = re.split(r"[-_]", value.strip(), maxsplit=1)[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 8 else None


def utc_from_struct(value: object) -> datetime | None:
    """feedparser's UTC struct_time → aware datetime (None if absent or absurd)."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def absolute_http_url(value: object, base: str) -> str | None:
    """`value` resolved against `base`, trimmed; None unless it is an http(s) URL."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        url = urljoin(base, value.strip())
    except ValueError:  # a malformed base or link (e.g. a bad IPv6 host)
        return None
    return url if is_http_url(url) else None


def sha256_hex(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(slots=True)
class NormalisedItem:
    """One feed entry as we store it: plain text, absolute link, UTC time."""

    guid: str
    link: str
    title: str
    summary: str
    body: str
    language: str | None
    published_at: datetime
    content_hash: str
    dated: bool = True  # False when the feed gave no usable date (published_at is then `now`)
    canonical_link: str = ""  # bot.feeds.identity fills these two (parse_feed)
    fingerprint: str = ""


def _entry_html(entry: Mapping[str, Any]) -> str:
    """The fullest HTML (or text) the entry carries: content beats summary when longer."""
    best = entry.get("summary") or ""
    for content in entry.get("content") or ():
        value = content.get("value") or ""
        if len(value) > len(best):
            best = value
    return str(best)


def _plain_get(entry: Mapping[str, Any], key: str) -> object:
    """entry[key] or None, bypassing FeedParserDict.get (which maps a missing key and warns)."""
    return dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)


def normalise_entry(
    entry: Mapping[str, Any], *, base_url: str, feed_language: str | None, now: datetime
) -> NormalisedItem | None:
    """A feedparser entry → NormalisedItem; None for an entry with nothing to show."""
    raw_title = clean_text(str(entry.get("title") or ""))
    if "<" in raw_title and _TITLE_TAG.search(raw_title):
        title = one_line(clean_text(html_to_text(raw_title)))
    elif "&" in raw_title:  # "<" without a real tag is text: "Fares <HK$10 and >HK$5"
        title = one_line(clean_text(html.unescape(raw_title)))
    else:
        title = one_line(raw_title)
    body = clean_text(html_to_text(clean_text(_entry_html(entry))))[:BODY_MAX_CHARS]
    if not title and not body:
        return None
    if not title:
        title = cut_at_word(one_line(body), 100)
    title = cut_at_word(title, TITLE_MAX_CHARS)

    published = utc_from_struct(_plain_get(entry, "published_parsed")) or utc_from_struct(
        _plain_get(entry, "updated_parsed")
    )
    dated = published is not None and EARLIEST_DATE <= published <= now + FUTURE_TOLERANCE
    if published is None or not dated:
        published = now

    raw_guid = clean_text(entry["id"]) if isinstance(entry.get("id"), str) else None
    raw_link = entry.get("link")
    link = absolute_http_url(clean_text(raw_link) if isinstance(raw_link, str) else None, base_url)
    guid = (
        (raw_guid or "").strip()
        or link
        or "sha256:" + sha256_hex(title, str(entry.get("published") or ""))
    )
    if link is None:
        # Release.link is the dedup key across feeds: an entry without one gets a stable stand-in
        link = absolute_http_url(guid, base_url) if "://" in guid else None
        link = link or f"{base_url.split('#', 1)[0]}#entry-{sha256_hex(guid)[:16]}"

    language = (
        language_tag((entry.get("title_detail") or {}).get("language"))
        or feed_language
        or detect_language(title + " " + body[:500])
    )
    return NormalisedItem(
        guid=guid[:2000],
        link=link,
        title=title,
        summary=make_summary(body, title),
        body=body,
        language=language,
        published_at=published,
        content_hash=sha256_hex(title, body, link),
        dated=dated,
    )
