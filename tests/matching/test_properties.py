"""Properties of normalisation, parsing and matching over arbitrary Unicode."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.matching.index import QueryMatcher, ReleaseText, TopicIndex
from bot.matching.query import (
    QueryError,
    _fast_tree,
    compile_canonical,
    compile_tree,
    parse_query,
    query_tree,
)
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


# Pieces of queries and texts that exercise every kind of term: words, hyphens, phrases,
# prefixes (short and long), CJK substrings, catalogue topics, OR and exclusions.
PIECES = st.sampled_from(
    [
        "customs",
        "e-commerce",
        "海關",
        "關拘",
        "港",
        "ivory",
        "tusk",
        "smuggl*",
        "sm*",
        "conference",
        '"hong kong"',
        '"hong ko*"',
        '"香港 customs"',
        "OR",
        "-ivory",
        "-海關",
        '-"press conference"',
        "café",
        "@weather",
        "covid-19",
        "19",
    ]
)
TEXT_WORDS = st.sampled_from(
    [
        "customs",
        "Customs",
        "e-commerce",
        "ecommerce",
        "香港海關拘捕",
        "港",
        "ivory",
        "tusks",
        "smuggling",
        "smugglers",
        "small",
        "press conference",
        "Hong Kong",
        "hong kongers",
        "香港 customs",
        "cafe",
        "COVID-19",
        "rainstorm",
        "暴雨",
        "-",
        ",",
    ]
)
TEXTS = st.lists(TEXT_WORDS, max_size=12).map(" ".join)
OPS = st.lists(
    st.tuples(st.booleans(), st.integers(0, 7), st.lists(PIECES, min_size=1, max_size=4)),
    min_size=1,
    max_size=25,
)


def _canonical(pieces: list[str]) -> str | None:
    try:
        return parse_query(" ".join(pieces)).canonical
    except QueryError:
        return None


def _naive(live: dict[int, str], text: ReleaseText) -> dict[int, bool]:
    found = {}
    for topic_id, canonical in live.items():
        flag = QueryMatcher(compile_tree(canonical)).matches(text)
        if flag is not None:
            found[topic_id] = flag
    return found


@RELAXED
@given(OPS, st.lists(st.tuples(TEXTS, TEXTS), min_size=1, max_size=6))
def test_after_any_adds_and_removes_the_index_agrees_with_each_query_checked_alone(
    ops: list[tuple[bool, int, list[str]]], texts: list[tuple[str, str]]
) -> None:
    releases = [ReleaseText.of(title, body) for title, body in texts]
    index = TopicIndex([], sample=releases[:2])
    live: dict[int, str] = {}
    for adding, topic_id, pieces in ops:
        canonical = _canonical(pieces)
        if adding and canonical is not None:
            assert index.add(topic_id, canonical)
            live[topic_id] = canonical
        else:
            assert index.remove(topic_id) == (topic_id in live)
            live.pop(topic_id, None)
        assert len(index) == len(live)
    expected = [_naive(live, text) for text in releases]
    assert index.match_many(releases) == expected
    assert [index.match(text) for text in releases] == expected
    # the same as an index built from scratch, and nothing left behind by removed topics
    fresh = TopicIndex(live.items())
    assert fresh.match_many(releases) == expected
    assert index.key_count == fresh.key_count
    for topic_id in list(live):
        index.remove(topic_id)
    assert index.key_count == 0 and index.match_many(releases) == [{} for _ in releases]


@RELAXED
@given(QUERIES)
def test_a_stored_canonical_form_reads_back_as_the_same_tree(text: str) -> None:
    try:
        parsed = parse_query(text)
    except QueryError:
        return
    assert compile_canonical(parsed.canonical) == query_tree(parsed.canonical)


def test_plain_canonical_forms_take_the_fast_path_and_others_the_full_parser() -> None:
    for text in ("customs seizure", '"hong kong" ivory -tusk', "smuggl* OR 瑜伽", "香港 x"):
        canonical = parse_query(text).canonical
        assert _fast_tree(canonical) is not None
        assert _fast_tree(canonical) == query_tree(canonical)
    # unsorted, upper case, a catalogue alias, a prefix too short: the full parser decides
    for text in ("seizure ivory", "Ivory", "customs", "s*", '"a  b"', "a OR"):
        assert _fast_tree(text) is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(PIECES, min_size=1, max_size=4), min_size=1, max_size=12),
    st.lists(st.tuples(TEXTS, TEXTS), min_size=70, max_size=300),
)
def test_a_wide_batch_agrees_with_each_query_checked_alone(
    queries: list[list[str]], texts: list[tuple[str, str]]
) -> None:
    # a batch of more releases than a machine word has bits: every position is written out
    live = {n: c for n, pieces in enumerate(queries) if (c := _canonical(pieces)) is not None}
    releases = [ReleaseText.of(title, body) for title, body in texts]
    index = TopicIndex(live.items(), sample=releases[:3])
    assert index.match_many(releases) == [_naive(live, text) for text in releases]


def test_or_of_words_is_in_the_title_when_any_word_is() -> None:
    index = TopicIndex([(1, parse_query("ivory OR tusk").canonical)])
    title_word, body_word = ReleaseText.of("Ivory seized", "two tusks"), ReleaseText.of("x", "tusk")
    assert index.match_many([title_word, body_word, ReleaseText.of("tusk", "ivory")]) == [
        {1: True},
        {1: False},
        {1: True},
    ]


def test_the_clause_table_grows_reuses_freed_rows_and_agrees_with_each_query_alone() -> None:
    # hundreds of two-word clauses (more rows than the table starts with), half of them
    # removed, then longer clauses (a wider table) and two-word ones again in freed rows
    words = ["customs", "ivory", "tusk", "seizure", "typhoon", "signal", "rainstorm", "暴雨"]
    words += [f"w{n}" for n in range(30)]
    pairs = [f"{a} {b}" for n, a in enumerate(words) for b in words[n + 1 :]]
    index = TopicIndex()
    live: dict[int, str] = {}
    for topic_id, query in enumerate(pairs):
        live[topic_id] = parse_query(query).canonical
        assert index.add(topic_id, live[topic_id])
    for topic_id in list(live)[::2]:
        assert index.remove(topic_id)
        del live[topic_id]
    longer = ["customs ivory tusk seizure w1", "typhoon signal w2 w3 -w4", "暴雨 w5 w6 OR w7 w8"]
    for n, query in enumerate(longer, start=len(pairs)):
        live[n] = parse_query(query).canonical
        assert index.add(n, live[n])
    for topic_id in range(1, 41, 2):  # rows freed from the wide table, then taken again
        assert index.remove(topic_id)
        del live[topic_id]
    for topic_id in range(0, 40, 2):
        live[topic_id] = parse_query(pairs[topic_id]).canonical
        assert index.add(topic_id, live[topic_id])
    texts = [
        "Customs seizure of ivory and a tusk w1",
        "Typhoon signal w2 w3, and w4",
        "暴雨 w5 w6 w0 w9",
        "w7 w8 rainstorm signal w11 w12 w13",
    ]
    releases = [ReleaseText.of(text, " ".join(reversed(text.split()))) for text in texts]
    expected = [_naive(live, release) for release in releases]
    assert index.match_many(releases) == expected
    assert sum(map(len, expected)) > 20  # many topics match: the test sees the table's rows
    assert index.key_count == TopicIndex(live.items()).key_count


def test_churned_topics_leave_the_batch_table_as_large_as_the_most_held_at_once() -> None:
    # a batch's presence table has a row per atom id: released ids are given to new atoms
    index = TopicIndex([(0, parse_query("customs ivory").canonical)])
    for n in range(1, 500):
        assert index.add(n, parse_query(f"term{n} other{n}").canonical)
        assert index.remove(n)
    assert index._next_atom <= 4
    release = ReleaseText.of("Customs seize ivory", "term7 other7")
    assert index.match(release) == {0: True}
    assert index.add(7, parse_query("term7 other7").canonical)
    assert index.match(release) == {0: True, 7: False}
