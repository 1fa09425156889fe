"""`press-digest preview QUERY [--days N]`: the digest a subscription would have produced.

Plain text, dates in Hong Kong time (Asia/Hong_Kong), e.g.::

    Customs / 海關: 2 releases in the last 7 days (to 2026-10-05, dates in Hong Kong time)

    2026-10-02  香港海關拘捕瑜伽中心董事涉嫌以不良營商手法銷售服務
                https://www.info.gov.hk/gia/general/202610/02/P2026100200770.htm
                香港海關今日（十月二日）拘捕一名瑜伽中心董事……
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.db import SessionFactory
from bot.matching.query import parse_query, query_tree
from bot.matching.service import any_release_stored, local_date, recent_matches
from bot.models import Release, utcnow

SHOWN = 10  # releases listed; the rest are counted
SUMMARY_CHARS = 160
_INDENT = " " * 12


def one_line_summary(release: Release, limit: int = SUMMARY_CHARS) -> str:
    """The release's summary (else its body's lead) on one line, cut at a word near `limit`."""
    text = " ".join((release.summary or release.body or "").split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"


async def preview_digest(
    sessions: SessionFactory, text: str, days: int = 7, now: datetime | None = None
) -> str:
    """Plain text: a header (label, period, count), then each match newest first.

    Raises QueryError for a malformed query.
    """
    parsed = parse_query(text)
    tree = query_tree(text)
    now = now or utcnow()
    found = await recent_matches(sessions, tree, now - timedelta(days=days), now)
    period = "day" if days == 1 else f"{days} days"
    if not found:
        if not await any_release_stored(sessions):
            return (
                "The database holds no releases yet: run `press-digest poll` to fetch the "
                "feeds, then preview again."
            )
        return f"No release in the last {period} matched {parsed.label}."
    noun = "release" if len(found) == 1 else "releases"
    lines = [
        f"{parsed.label}: {len(found)} {noun} in the last {period} "
        f"(to {local_date(now)}, dates in Hong Kong time)",
    ]
    for item in found[:SHOWN]:
        release = item.release
        lines.append("")
        lines.append(f"{local_date(release.published_at)}  {' '.join(release.title.split())}")
        lines.append(_INDENT + release.link)
        if summary := one_line_summary(release):
            lines.append(_INDENT + summary)
    if len(found) > SHOWN:
        lines.append("")
        lines.append(f"…and {len(found) - SHOWN} more")
    return "\n".join(lines)
