"""Matching rules, one row each, on the fixture releases (and a few texts made for one rule).

Every row is checked twice: through the compiled TopicIndex (one automaton for all topics)
and through the one-query QueryMatcher, which must agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.matching.index import QueryMatcher, ReleaseText, TopicIndex
from bot.matching.query import parse_query, query_tree
from tests.matching.feed_text import EN_SEED, ZH_SUBSET, fixture_releases, release_titled

STATEMENT = "HKSAR Government strongly condemns"
CONFERENCE = "Conference on Simplification"
ZH_CUSTOMS = "香港海關拘捕瑜伽中心董事"
ZH_LEGCO = "香港特區立法會強烈反對"
ZH_BEACH = "大埔龍尾泳灘懸掛紅旗"

FIXTURE_ROWS = [
    # (rule, query, feed, release title start, matches)
    ("word", "customs", EN_SEED, CONFERENCE, True),
    ("word", "customs", EN_SEED, STATEMENT, False),
    ("hyphenated word", "e-commerce", EN_SEED, CONFERENCE, True),
    ("hyphen dropped", "ecommerce", EN_SEED, CONFERENCE, True),
    ("U+2010 hyphen", "e\u2010commerce", EN_SEED, CONFERENCE, True),
    ("U+2011 hyphen", "e\u2011commerce", EN_SEED, CONFERENCE, True),
    ("U+2013 dash", "e\u2013commerce", EN_SEED, CONFERENCE, True),
    ("phrase", '"national security"', EN_SEED, STATEMENT, True),
    ("phrase", '"national security"', EN_SEED, CONFERENCE, False),
    ("phrase order", '"kong hong customs"', EN_SEED, CONFERENCE, False),
    ("phrase", '"hong kong customs"', EN_SEED, CONFERENCE, True),
    ("boundary: shorter word", "custom", EN_SEED, CONFERENCE, False),
    ("boundary: shorter word", "custom", EN_SEED, STATEMENT, False),
    ("boundary: inside a word", "accustomed", EN_SEED, CONFERENCE, False),
    ("boundary: part of word", "onference", EN_SEED, CONFERENCE, False),
    ("width", "ｃｕｓｔｏｍｓ", EN_SEED, CONFERENCE, True),
    ("case", "ASEAN SECRETARIAT", EN_SEED, CONFERENCE, True),
    ("AND needs every word", "customs sanctions", EN_SEED, CONFERENCE, False),
    ("AND across title and body", "concludes wco", EN_SEED, CONFERENCE, True),
    ("prefix", "conclud*", EN_SEED, CONFERENCE, True),
    ("prefix", "safeguard*", EN_SEED, STATEMENT, True),
    ("prefix", "safeguard*", EN_SEED, CONFERENCE, True),  # "safeguarding the security"
    ("prefix is anchored at a word start", "afeguard*", EN_SEED, STATEMENT, False),
    ("OR", "sanctions OR ivory", EN_SEED, STATEMENT, True),
    ("OR", "sanctions OR ivory", EN_SEED, CONFERENCE, False),
    ("OR binds looser than AND", "ivory sanctions OR asean", EN_SEED, CONFERENCE, True),
    ("OR binds looser than AND", "ivory asean OR sanctions", EN_SEED, CONFERENCE, False),
    ("exclusion", "customs -conference", EN_SEED, CONFERENCE, False),
    ("exclusion", "customs -conference", ZH_SUBSET, ZH_CUSTOMS, True),
    ("exclusion covers every OR clause", "customs OR asean -wco", EN_SEED, CONFERENCE, False),
    ("exclusion of a phrase", 'hksar -"national security"', EN_SEED, STATEMENT, False),
    ("CJK substring", "海關", ZH_SUBSET, ZH_CUSTOMS, True),
    ("CJK substring inside a run", "關拘", ZH_SUBSET, ZH_CUSTOMS, True),
    ("CJK", "海關", ZH_SUBSET, ZH_LEGCO, False),
    ("catalogue: English word finds Chinese text", "customs", ZH_SUBSET, ZH_CUSTOMS, True),
    ("catalogue: Simplified finds Traditional", "海关", ZH_SUBSET, ZH_CUSTOMS, True),
    ("catalogue: Chinese finds English text", "國安", EN_SEED, STATEMENT, True),
    ("catalogue: phrase finds Chinese text", '"national security"', ZH_SUBSET, ZH_LEGCO, True),
    ("catalogue: abbreviation", "C&ED", ZH_SUBSET, ZH_CUSTOMS, True),
    ("catalogue", "beaches", ZH_SUBSET, ZH_BEACH, True),
    ("catalogue inside a larger query", "customs 瑜伽", ZH_SUBSET, ZH_CUSTOMS, True),
    ("catalogue inside a larger query", "customs 瑜伽", EN_SEED, CONFERENCE, False),
]

TEXT_ROWS = [
    # (rule, query, title, body, matches)
    ("accents", "café", "New cafe opens", "", True),
    ("accents", "cafe", "Café de Coral", "", True),
    ("accents, combining mark", "cafe", "Cafe\u0301 licences", "", True),
    ("width in the text", "customs", "ＣＵＳＴＯＭＳ seizure", "", True),
    ("a phrase finds the joined word", '"e commerce"', "Ecommerce week", "", True),
    ("a joined word finds the hyphenated text", "ecommerce", "E‑commerce week", "", True),
    ("a word inside a hyphenated word", "covid", "COVID-19 vaccination", "", True),
    ("hyphenated query", "covid-19", "COVID19 vaccination", "", True),
    ("apostrophe", "china", "China's trade", "", True),
    ("boundary after a digit", "19", "COVID-2019", "", False),
    ("CJK next to Latin", "customs", "香港海關customs行動", "", True),
    ("Japanese substring", "東京", "東京都庁の発表", "", True),
    ("Japanese voicing mark kept", "が", "かき", "", False),
    ("Korean substring", "한국", "대한민국한국어", "", True),
    ("RTL and zero-width marks", "customs", "cus\u200dtoms\u200f", "", True),
    ("control characters", "customs", "\x00customs\x07", "", True),
    ("prefix with CJK text around", "smuggl*", "走私smuggling案", "", True),
    ("title only", "ivory", "Ivory seized", "", True),
    ("body only", "ivory", "Seizure", "Ivory was seized", True),
    ("neither", "ivory", "Seizure", "Tusks were seized", False),
]


def _check(query: str, text: ReleaseText) -> bool | None:
    """None when not matched, else in_title; asserts the index and the one-query matcher agree."""
    canonical = parse_query(query).canonical
    index = TopicIndex([(1, canonical), (2, "unrelated"), (3, "@weather")])
    by_index = index.match(text).get(1)
    by_matcher = QueryMatcher(query_tree(query)).matches(text)
    assert by_index == by_matcher
    return by_index


@pytest.mark.parametrize(
    ("rule", "query", "feed", "title", "expected"),
    FIXTURE_ROWS,
    ids=[f"{r[0]}: {r[1]}" for r in FIXTURE_ROWS],
)
def test_fixture_release(
    feeds_dir: Path, rule: str, query: str, feed: str, title: str, expected: bool
) -> None:
    release = release_titled(fixture_releases(feeds_dir, feed), title)
    assert (_check(query, ReleaseText.of(release.title, release.body)) is not None) is expected


@pytest.mark.parametrize(
    ("rule", "query", "title", "body", "expected"),
    TEXT_ROWS,
    ids=[f"{r[0]}: {r[1]}" for r in TEXT_ROWS],
)
def test_text(rule: str, query: str, title: str, body: str, expected: bool) -> None:
    assert (_check(query, ReleaseText.of(title, body)) is not None) is expected


def test_a_title_match_is_flagged_and_a_body_only_match_is_not(feeds_dir: Path) -> None:
    conference = release_titled(fixture_releases(feeds_dir, EN_SEED), CONFERENCE)
    text = ReleaseText.of(conference.title, conference.body)
    assert _check("e-commerce", text) is True
    assert _check("customs", text) is False


def test_one_index_matches_every_topic_in_one_pass(feeds_dir: Path) -> None:
    topics = {row[1] for row in FIXTURE_ROWS}
    canonical = {parse_query(q).canonical for q in topics}
    index = TopicIndex(list(enumerate(sorted(canonical))))
    for feed in (EN_SEED, ZH_SUBSET):
        for release in fixture_releases(feeds_dir, feed):
            text = ReleaseText.of(release.title, release.body)
            expected = {}
            for topic_id, query in enumerate(sorted(canonical)):
                flag = QueryMatcher(query_tree(query)).matches(text)
                if flag is not None:
                    expected[topic_id] = flag
            assert index.match(text) == expected
