"""Properties of normalisation, parsing and matching over arbitrary Unicode."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.matching.index import QueryMatcher, ReleaseText, TopicIndex
from bot.matching.query import QueryError, parse_query, query_tree
from bot.matching.text import normalise, text_views

# Any code point, plus the characters the query language gives a meaning to, often.
SPECIAL = st.sampled_from(
    ['"', "“", "-", "*", " ", "OR", "@customs", "海關", "e-commerce", "\u200f", "\x00"]
)
QUERIES = st.lists(st.one_of(st.text(max_size=8), SPECIAL), max_size=12).map("".join)
RELAXED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@RELAXED
@given(st.text())
@example("0⺀0")  # a CJK radical (a symbol) inside a chunk: found by hypothesis
@example("ก๏ก")
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once
    for view in text_views(text):
        assert text_views(view) == (view,)


@RELAXED
@given(QUERIES)
def test_any_query_parses_or_raises_query_error(text: str) -> None:
    try:
        parsed = parse_query(text)
    except QueryError as exc:
        assert "\n" not in str(exc)
        return
    assert parsed.canonical
    # the canonical form is stable: parsing it gives it back
    assert parse_query(parsed.canonical).canonical == parsed.canonical


@RELAXED
@given(QUERIES, st.text(), st.text())
def test_matching_never_raises_and_the_index_agrees_with_the_one_query_matcher(
    query: str, title: str, body: str
) -> None:
    try:
        parsed = parse_query(query)
    except QueryError:
        return
    text = ReleaseText.of(title, body)
    index = TopicIndex([(7, parsed.canonical)])
    assert index.match(text).get(7) == QueryMatcher(query_tree(query)).matches(text)


WORDS = st.sampled_from(
    ["customs", "e-commerce", "海關", "ivory", "tusk", "smuggl*", '"hong kong"', "café"]
)


@RELAXED
@given(st.lists(WORDS, min_size=1, max_size=5), st.text(max_size=40), st.booleans())
def test_a_query_matches_a_text_made_of_its_words(
    words: list[str], noise: str, in_title: bool
) -> None:
    parsed = parse_query(" ".join(words))
    text = " ".join(w.strip('"').replace("*", "ing") for w in words)
    release = ReleaseText.of(text, noise) if in_title else ReleaseText.of(noise, text)
    matched = TopicIndex([(1, parsed.canonical)]).match(release).get(1)
    assert matched is not None
    if in_title:
        assert matched is True
