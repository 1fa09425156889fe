"""Text normalisation shared by queries and releases, so that both are compared in one form.

A normalised text is a string of tokens separated by single spaces, with one space before
the first and after the last token: ``" hong kong customs 海關 "``. The spaces make word
boundaries literal characters, so a Latin word is looked up as ``" customs "`` (whole
word), a prefix as ``" smuggl"``, and a CJK term as plain ``"海關"`` (substring).

Steps: NFKC (full width, ligatures) → casefold → strip combining accents from Latin,
Greek and Cyrillic letters (``café`` = ``cafe``; Japanese voicing marks are kept) →
remove invisible format characters (RTL marks, zero-width joiners, soft hyphens) →
tokens. A token is either a run of letters and digits (``\\w`` minus ``_``, with the
combining marks of scripts such as Devanagari) or a run of CJK / Thai-like characters,
which have no spaces between words and are matched as substrings.

Hyphens (``-``, U+2010, U+2011, U+2012, U+2013, U+2212 …) and apostrophes inside a word
join it: a text has two *views*, ``split`` (``e commerce``, so ``commerce`` and ``covid``
still match ``e-commerce`` and ``COVID-19``) and ``joined`` (``ecommerce``, ``covid19``).
Queries are normalised to the joined form; matching looks in both views.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from typing import NamedTuple

# Scripts written without spaces between words: matched as substrings, never on word boundaries.
_NO_SPACE_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3031, 0x3035),  # kana repeat marks
    (0x3040, 0x30FF),  # Hiragana, Katakana (with ー)
    (0x3100, 0x312F),  # Bopomofo
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31A0, 0x31FF),  # Bopomofo extended, CJK strokes, Katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana (NFKC folds most of them)
    (0x20000, 0x3FFFF),  # CJK extensions B onwards
)

# Generic combining diacritics; the marks of Indic scripts and kana voicing marks are elsewhere.
_ACCENTS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
# Invisible: soft hyphen, ALM, Mongolian vowel separator, zero-width and bidi controls, BOM,
# variation selectors and tags. Removed so they never split (or crash) a word.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff"
    "\U000e0000-\U000e0fff]+"
)


def _ranges_class(ranges: list[tuple[int, int]]) -> str:
    return "".join(
        f"{re.escape(chr(a))}-{re.escape(chr(b))}" if a != b else re.escape(chr(a))
        for a, b in ranges
    )


def _collapse(codes: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for code in codes:
        if out and out[-1][1] == code - 1:
            out[-1] = (out[-1][0], code)
        else:
            out.append((code, code))
    return out


def _script_marks() -> list[tuple[int, int]]:
    """Combining marks that are part of letters in scripts like Devanagari (not stripped)."""
    codes = [
        c
        for c in range(0x0370, 0x20000)
        if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me") and not _ACCENTS.match(chr(c))
    ]
    return _collapse(codes)


def _no_space_letters() -> list[tuple[int, int]]:
    """The ranges less their punctuation and symbols below U+3040 (radicals ⺀, Thai ๏ ...),
    which `_words` strips from a chunk's ends: inside a chunk they must not be tokens either,
    or a text would normalise differently a second time."""
    codes: list[int] = []
    for lo, hi in _NO_SPACE_RANGES:
        if lo >= 0x3040:
            codes.extend(range(lo, hi + 1))
            continue
        codes.extend(c for c in range(lo, hi + 1) if unicodedata.category(chr(c))[0] not in "PS")
    return _collapse(codes)


_NO_SPACE = _ranges_class(_no_space_letters())
_MARKS = _ranges_class(_script_marks())
# A word char: a letter or digit of a spaced script, or one of its combining marks.
_W = f"(?:[^\\W_{_NO_SPACE}]|[{_MARKS}])"
_TOKEN = re.compile(f"[{_NO_SPACE}]+|{_W}+(?:['-]{_W}+)*")
_NO_SPACE_CHAR = re.compile(f"[{_NO_SPACE}]")

MAX_TEXT_CHARS = 1_000_000  # a release longer than this is cut: matching stays bounded


# Invisible characters or accents somewhere in the text: take the thorough path.
_RARE = re.compile(_INVISIBLE.pattern[:-2] + _ACCENTS.pattern[1:-2] + "]")
# Dashes that join the two halves of a word (NFKC already folds U+FE63 and U+FF0D to "-").
_DASH_CHARS = (
    *((dash, "-") for dash in "\u2010\u2011\u2012\u2013\u2212\u2043"),
    ("\u2019", "'"),
    ("\u02bc", "'"),
)


def fold(text: str) -> str:
    """Case, width and accents folded; invisible characters removed (no tokenising)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return text
    for dash, replacement in _DASH_CHARS:
        if dash in text:
            text = text.replace(dash, replacement)
    if _RARE.search(text) or not unicodedata.is_normalized("NFD", text):
        text = _INVISIBLE.sub("", text)
        text = _ACCENTS.sub("", unicodedata.normalize("NFD", text))
        text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
        for dash, replacement in _DASH_CHARS:
            if dash in text:
                text = text.replace(dash, replacement)
    return text


def tokens(text: str) -> list[str]:
    """Normalised tokens, joined form: ``E-Commerce in 香港`` → ``['ecommerce', 'in', '香港']``."""
    return [tok.replace("-", "").replace("'", "") for tok in _TOKEN.findall(fold(text))]


_NO_SPACE_STARTS = [lo for lo, _ in _NO_SPACE_RANGES]


def is_no_space(token: str) -> bool:
    """True for a CJK (or Thai-like) token: matched as a substring."""
    if not token or token[0].isascii():
        return False
    code = ord(token[0])
    i = bisect_right(_NO_SPACE_STARTS, code) - 1
    return i >= 0 and code <= _NO_SPACE_RANGES[i][1]


# ASCII fast path: everything but letters, digits, hyphen and apostrophe becomes a space.
_ASCII_SEPARATORS = bytes(
    c if chr(c).isalnum() or chr(c) in "-'" else 0x20 for c in range(128)
) + bytes(range(128, 256))


def _ascii_words(text: str) -> list[str]:
    """What `_TOKEN.findall(fold(text))` gives for ASCII text, about ten times faster."""
    chunks = text.lower().encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii").split()
    if "-" not in text and "'" not in text:
        return chunks
    # a stray, leading, trailing or doubled hyphen or apostrophe does not join: the regex decides
    return [
        w
        for chunk in chunks
        for w in (_TOKEN.findall(chunk) if "-" in chunk or "'" in chunk else (chunk,))
    ]


# Punctuation that sticks to words ("customs," "(WCO)"): stripped from a chunk's ends.
# Not the CJK radicals (symbols, but tokens of their own like every no-space character).
_PUNCTUATION = "".join(
    chr(c)
    for c in range(0x3040)
    if not chr(c).isalnum()
    and not chr(c).isspace()
    and unicodedata.category(chr(c))[0] in "PS"
    and not _NO_SPACE_CHAR.match(chr(c))
)


def _words(text: str) -> list[str]:
    """`_TOKEN.findall(fold(text))`, faster: whitespace chunks that are plain ASCII words once
    their punctuation is stripped are taken as they are; only the rest go through the regex."""
    words: list[str] = []
    for chunk in fold(text).split():
        if chunk.isascii() and chunk.isalnum():
            words.append(chunk)
            continue
        stripped = chunk.strip(_PUNCTUATION)
        if stripped.isascii() and stripped.isalnum():
            words.append(stripped)
        elif stripped:
            words.extend(_TOKEN.findall(stripped))
    return words


def text_views(text: str) -> tuple[str, ...]:
    """The normalised views of a text: (split,) or (split, joined) when a word has a hyphen."""
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
    words = _ascii_words(text) if text.isascii() else _words(text)
    base = " " + " ".join(words) + " "
    if "-" not in base and "'" not in base:
        return (base,)
    split = base.replace("-", " ").replace("'", " ")
    joined = base.replace("-", "").replace("'", "")
    return (split, joined)


def normalise(text: str) -> str:
    """The split view of a text, e.g. ``"Café E-Commerce!"`` → ``" cafe e commerce "``."""
    return text_views(text)[0]


def tidy(text: str) -> str:
    """User text for display: invisible and control characters gone, whitespace collapsed."""
    text = _INVISIBLE.sub("", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())


class Term(NamedTuple):
    """One search term in normalised tokens: a word, a phrase (several tokens) or a prefix.

    A NamedTuple, not a dataclass: the index hashes millions of them (C-level hash and eq).
    """

    tokens: tuple[str, ...]
    prefix: bool = False

    @property
    def canonical(self) -> str:
        star = "*" if self.prefix else ""
        if len(self.tokens) == 1:
            return self.tokens[0] + star
        return '"' + " ".join(self.tokens) + star + '"'

    @property
    def joined(self) -> str:
        """The tokens run together, as aliases are looked up: ``e commerce`` → ``ecommerce``."""
        return "".join(self.tokens)

    def patterns(self) -> tuple[str, ...]:
        """The strings whose presence in a normalised view means the term is there.

        Latin ends get a space (word boundary; none after a prefix), CJK ends none (substring).
        A phrase also matches its tokens run together: ``"e commerce"`` finds ``ecommerce``.
        """
        first, last = self.tokens[0], self.tokens[-1]
        lead = "" if is_no_space(first) else " "
        tail = "" if self.prefix or is_no_space(last) else " "
        keys = [lead + " ".join(self.tokens) + tail]
        if len(self.tokens) > 1:
            keys.append(lead + self.joined + tail)
        return tuple(dict.fromkeys(keys))
