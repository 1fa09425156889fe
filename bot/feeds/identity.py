"""Pure decisions about a release's identity: which link it is, which text it is, whether two
stored items are one release, and whether an item is history or news.

No I/O here: store.py asks these questions and does the SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from difflib import SequenceMatcher
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bot.feeds.normalise import sha256_hex
from bot.matching.text import normalise

# Query parameters that say where a reader came from, never which page it is.
TRACKING_PARAMETERS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "_hsenc",
        "_hsmi",
        "ref_src",
        "spm",
    }
)
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")
DEFAULT_PORTS = frozenset({80, 443})
LEAD_CHARS = 400  # normalised characters of the text that make up its fingerprint
# Two feeds carrying the same text this far apart in time carry a recurring notice, not one release.
SAME_RELEASE_WINDOW = timedelta(days=3)


def canonical_link(link: str) -> str:
    """The form of `link` used to compare links, never to show them.

    https for http, host lower-case, default port, fragment and tracking parameters dropped,
    the other parameters sorted. Our own stand-in fragments (`#entry-…`, for entries without
    a link) are kept: they are the only thing that tells those entries apart.
    """
    parts = urlsplit(link.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return link.strip()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: compare the link as it is
        return link.strip()
    netloc = host if port is None or port in DEFAULT_PORTS else f"{host}:{port}"
    query = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name.lower() not in TRACKING_PARAMETERS
        and not name.lower().startswith(TRACKING_PREFIXES)
    )
    fragment = parts.fragment if parts.fragment.startswith("entry-") else ""
    return urlunsplit(("https", netloc, parts.path or "/", urlencode(query), fragment))


def fingerprint(title: str, body: str, canonical: str) -> str:
    """What a release says: normalised title and lead text (case, width, spacing and markup
    do not count). An entry without text is told apart by its link as well."""
    lead = normalise(body[: LEAD_CHARS * 2]).strip()[:LEAD_CHARS]
    if not lead:
        return sha256_hex("title+link", normalise(title).strip(), canonical)
    return sha256_hex("title+lead", normalise(title).strip(), lead)


@dataclass(frozen=True)
class ReleaseKey:
    """What decides whether two stored items are one release."""

    feed_id: int | None
    canonical_link: str
    fingerprint: str
    published_at: datetime


def is_same_release(a: ReleaseKey, b: ReleaseKey) -> bool:
    """One release, shown once?

    Never with other text (HKO bulletins under one link are each news). Within one feed the
    link must agree too: a publisher that gives the same text a new guid and a new link
    published it again. Across feeds links are unrelated, so the text decides, within a few
    days (a notice repeated weeks later is news again).
    """
    if a.fingerprint != b.fingerprint:
        return False
    if a.feed_id is not None and a.feed_id == b.feed_id:
        return a.canonical_link == b.canonical_link
    return abs(a.published_at - b.published_at) <= SAME_RELEASE_WINDOW


def is_history(
    published_at: datetime | None, *, feed_added_at: datetime, first_fetch_with_items: bool
) -> bool:
    """True for an item published before its feed was added: stored, never announced.

    `published_at` is None for an undated item: history when it is in the first fetch that
    had any items, news after that. Feed dates have one-second resolution, so a release of
    the very second the feed was added is news.
    """
    if published_at is None:
        return first_fetch_with_items
    return published_at.replace(microsecond=0) < feed_added_at.replace(microsecond=0)


_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
SMALL_EDIT_WORDS = 3  # changed words at most, in a text that is otherwise the same
SMALL_EDIT_SHARE = 0.02  # … or at most this share of its words
COMPARED_WORDS = 5000  # words of each text compared (press releases are far shorter)


def is_correction(old_title: str, old_body: str, new_title: str, new_body: str) -> bool:
    """Is a changed release a correction a reader should see again?

    Yes when the title says something else, when a number or a date in the text changed, or
    when more than a few words changed. Whitespace, markup (already gone from the text),
    case and width never count; neither does fixing a typo or two.
    """
    if normalise(old_title) != normalise(new_title):
        return True
    old_words = normalise(old_body).split()[:COMPARED_WORDS]
    new_words = normalise(new_body).split()[:COMPARED_WORDS]
    if old_words == new_words:
        return False
    if _NUMBER.findall(" ".join(old_words)) != _NUMBER.findall(" ".join(new_words)):
        return True
    matcher = SequenceMatcher(None, old_words, new_words, autojunk=False)
    changed = sum(
        max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    )
    allowed = max(SMALL_EDIT_WORDS, int(SMALL_EDIT_SHARE * max(len(old_words), len(new_words))))
    return changed > allowed
