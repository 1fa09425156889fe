"""Releases of the fixture feeds as plain text, read here (not through the feeds stage)."""

from __future__ import annotations

import calendar
import html
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import feedparser

EN_SEED = "hk-gia-general-en-seed.xml"
ZH_SUBSET = "hk-gia-general-zh-2026-10-05-subset.xml"


@dataclass(frozen=True)
class FixtureRelease:
    title: str
    body: str
    link: str
    published_at: datetime


def html_to_text(markup: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def fixture_releases(feeds_dir: Path, name: str) -> list[FixtureRelease]:
    parsed = feedparser.parse(io.BytesIO((feeds_dir / name).read_bytes()))
    releases = []
    for entry in parsed.entries:
        published = datetime.fromtimestamp(calendar.timegm(entry.published_parsed), UTC)
        releases.append(
            FixtureRelease(
                entry.title, html_to_text(entry.get("description", "")), entry.link, published
            )
        )
    return releases


def release_titled(releases: list[FixtureRelease], start: str) -> FixtureRelease:
    return next(r for r in releases if r.title.startswith(start))
