"""The topic catalogue (topics.toml): what it covers and the aliases it must not have."""

from __future__ import annotations

import pytest

from bot.matching.catalogue import all_topics, find_topic, popular_topics
from bot.matching.text import is_no_space, tokens

REQUIRED = [
    ("customs", ["customs", "海關", "海关", "C&ED", "Customs and Excise"]),
    ("e-commerce", ["e-commerce", "電子商務", "电子商务", "電商", "电商", "online shopping"]),
    ("national-security", ["national security", "國家安全", "国家安全", "國安", "国安", "NSL"]),
]


@pytest.mark.parametrize(("key", "names"), REQUIRED, ids=[k for k, _ in REQUIRED])
def test_every_name_of_a_required_topic_finds_it(key: str, names: list[str]) -> None:
    for name in names:
        topic = find_topic(name)
        assert topic is not None and topic.key == key, name


def test_the_catalogue_covers_what_hong_kong_releases_are_about() -> None:
    keys = {t.key for t in all_topics()}
    assert len(keys) >= 33
    expected = {"health", "hospital-authority", "housing", "transport", "mtr", "weather", "police"}
    expected |= {"fire-services", "immigration", "tax", "budget", "education", "environment"}
    expected |= {"trade", "stock-market", "employment", "elderly", "legco", "chief-executive"}
    expected |= {"covid", "tourism", "food-safety", "water-supplies", "district-councils"}
    expected |= {"innovation-technology"}
    assert expected <= keys


def test_no_alias_is_a_single_chinese_character_or_a_one_letter_word() -> None:
    for topic in all_topics():
        for alias in (*topic.aliases, topic.name_zh, topic.name_en):
            words = tokens(alias)
            assert words, (topic.key, alias)
            if len(words) == 1:  # one CJK character or one letter would match almost anything
                assert len(words[0]) >= 2, (topic.key, alias)
            assert not any(is_no_space(w) and len(w) == 1 for w in words), (topic.key, alias)


def test_no_alias_belongs_to_two_topics() -> None:
    owner: dict[str, str] = {}
    for topic in all_topics():
        for alias in topic.aliases:
            joined = "".join(tokens(alias))
            assert owner.setdefault(joined, topic.key) == topic.key, (
                alias,
                owner[joined],
                topic.key,
            )


def test_start_offers_six_to_eight_popular_topics_with_both_names() -> None:
    popular = popular_topics()
    assert 6 <= len(popular) <= 8
    assert all(t.name_en and t.name_zh for t in popular)


def test_something_else_is_not_a_catalogue_topic() -> None:
    assert find_topic("ivory seizure") is None
    assert find_topic("custom") is None
