"""The query language: canonical forms, labels, catalogue topics and one-line errors."""

from __future__ import annotations

import pytest

from bot.i18n import t_plain
from bot.matching.query import MAX_TERMS, QueryError, parse_query

SAME_TOPIC = [
    # (queries that must be one topic row, their canonical form)
    (
        [
            "Customs",
            " customs ",
            "CUSTOMS",
            "ｃｕｓｔｏｍｓ",
            "海關",
            "海关",
            "C&ED",
            "Customs and Excise",
            "@customs",
        ],
        "@customs",
    ),
    (
        [
            "e-commerce",
            "ecommerce",
            "e commerce",
            '"e commerce"',
            "E‐Commerce",
            "e–commerce",
            "電商",
            "电子商务",
        ],
        "@e-commerce",
    ),
    (['"national security"', "national security", "國安", "国家安全", "NSL"], "@national-security"),
    (
        ["customs -conference", "-conference 海關", "  Customs   -Conference "],
        "@customs -conference",
    ),
    (["seizure ivory", "ivory seizure", "IVORY  Seizure"], "ivory seizure"),
    (["café", "cafe", "CAFÉ", "cafe\u0301"], "cafe"),
    (["a-b-c-d", "abcd"], "abcd"),
    (
        ["ivory OR rhino horn", "horn rhino OR ivory", "ivory OR ivory OR horn rhino"],
        "horn rhino OR ivory",
    ),
    (["smuggl*", "SMUGGL*"], "smuggl*"),
    (
        ['"hong kong airport"', "“Hong Kong Airport”", "「hong kong airport」"],
        '"hong kong airport"',
    ),
    (["ivory\u200f", "\u202bivory\u202c", "ivo\u00adry"], "ivory"),
]


@pytest.mark.parametrize(("queries", "canonical"), SAME_TOPIC, ids=[c for _, c in SAME_TOPIC])
def test_equivalent_queries_share_one_canonical_form(queries: list[str], canonical: str) -> None:
    assert {parse_query(q).canonical for q in queries} == {canonical}


def test_a_catalogue_topic_is_labelled_by_its_names_and_lists_its_aliases() -> None:
    parsed = parse_query("海關")
    assert parsed.label == "Customs / 海關"
    assert {"customs", "海關", "海关", "C&ED", "Customs and Excise"} <= set(parsed.aliases)


def test_a_query_outside_the_catalogue_is_used_as_written() -> None:
    parsed = parse_query("  Hong  Kong “Airport”  ")
    assert parsed.label == 'Hong Kong "Airport"'
    assert parsed.aliases == ()
    assert parsed.canonical == "airport hong kong"


def test_a_catalogue_term_inside_a_larger_query_keeps_the_users_words_as_label() -> None:
    parsed = parse_query("customs -conference")
    assert parsed.label == "customs -conference"
    assert "海關" in parsed.aliases


ERRORS = [
    # (query, words the one-line message must contain)
    ("", "empty"),
    ("   \t ", "empty"),
    ("-conference", "only exclusions"),
    ('"national security', 'close the quote, e.g. "national security"'),
    ("x" * 201, "at most 200"),
    (" ".join(f"w{i}" for i in range(MAX_TERMS + 1)), "too many terms"),
    ("!!! ??? ...", "only punctuation"),
    ("*", "lone *"),
    ("customs OR", "OR at the end"),
    ("OR customs", "OR at the start"),
    ("customs OR OR excise", "two ORs"),
    ("customs OR -excise", "one side of OR"),
    ("a*", "too short a prefix"),
    ("sm*ggle", "end of a word"),
    ("ivory -ivory", "both wanted and excluded"),
    ("\u202e\u200f\x00\x07", "empty"),
]


@pytest.mark.parametrize(("query", "expected"), ERRORS, ids=[e for _, e in ERRORS])
def test_a_malformed_query_gets_one_line_saying_what_is_wrong_with_an_example(
    query: str, expected: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    error = caught.value
    # what a person reads: the error's key and parameters rendered by bot.i18n
    message = t_plain("en", error.key, **error.params)
    assert expected.casefold() in message.casefold()
    assert "\n" not in message and "{" not in message
    assert "e.g." in message
    assert "\n" not in str(error)  # the English line for logs


@pytest.mark.parametrize(("query", "expected"), ERRORS, ids=[e for _, e in ERRORS])
def test_a_malformed_query_is_explained_in_chinese_too(query: str, expected: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    error = caught.value
    message = t_plain("zh", error.key, **error.params)
    assert message != t_plain("en", error.key, **error.params)
    assert "例如" in message and "\n" not in message and "{" not in message


def test_max_length_is_configurable() -> None:
    assert parse_query("x" * 250, max_length=300).canonical == "x" * 250
    with pytest.raises(QueryError) as caught:
        parse_query("customs seizure", max_length=10)
    assert caught.value.params == {"length": 15, "limit": 10}
    assert "at most 10" in t_plain("en", caught.value.key, **caught.value.params)


def test_or_binds_looser_than_and() -> None:
    # a b OR c = (a AND b) OR c: the canonical form keeps the clauses apart
    assert parse_query("ivory tusk OR rhino").canonical == "ivory tusk OR rhino"
    assert parse_query("rhino OR tusk ivory").canonical == "ivory tusk OR rhino"


def test_lowercase_or_is_a_word() -> None:
    assert parse_query("ivory or rhino").canonical == "ivory or rhino"
