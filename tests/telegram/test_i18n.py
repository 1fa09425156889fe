"""The message catalogue: both languages complete, every text valid Telegram HTML."""

from __future__ import annotations

import pytest

from bot.i18n import (
    CATALOGUES,
    EN,
    ENGLISH_ONLY_PARAMS,
    ZH,
    Html,
    language_from_code,
    placeholders,
    t,
    t_plain,
)
from tests.doubles.telegram_api import parse_html


def test_both_catalogues_have_the_same_keys_but_english_plurals() -> None:
    singulars = {key for key in EN if key.endswith("_one")}
    assert set(EN) - singulars == set(ZH)
    assert {key.removesuffix("_one") for key in singulars} <= set(EN)


@pytest.mark.parametrize("key", sorted(ZH))
def test_both_languages_use_the_same_placeholders(key: str) -> None:
    english_only = ENGLISH_ONLY_PARAMS.get(key, frozenset())
    assert placeholders(EN[key]) - english_only == placeholders(ZH[key])


def test_english_says_one_release_and_two_releases() -> None:
    assert t("en", "digest_count", count=1) == "1 new release"
    assert t("en", "digest_count", count=2) == "2 new releases"
    assert t("en", "addfeed_ok", url="u", count=1) == "Added u: 1 new release found."
    assert t_plain("en", "button_broadcast_queued", count=1) == "Queued to 1 chat"
    assert t("zh", "digest_count", count=1) == "1 則新公報"


@pytest.mark.parametrize("lang", sorted(CATALOGUES))
@pytest.mark.parametrize("key", sorted(EN))
def test_every_text_is_valid_telegram_html_with_hostile_parameters(lang: str, key: str) -> None:
    params = {name: '<b>&"x"</b>' for name in placeholders(EN[key])}
    rendered = t(lang, key, **params)
    plain, _ = parse_html(rendered)
    assert plain.strip()
    if placeholders(CATALOGUES[lang].get(key, EN[key])):  # type: ignore[index]
        assert '<b>&"x"</b>' in plain  # user text is shown as typed, never as markup


def test_html_parameters_are_inserted_as_they_are() -> None:
    rendered = t("en", "subscribed_example", example=Html('<a href="https://x.org/">A &amp; B</a>'))
    assert '<a href="https://x.org/">A &amp; B</a>' in rendered


def test_plain_texts_are_not_escaped() -> None:
    assert t_plain("en", "button_subscribed", label="A & B") == "Following A & B"


@pytest.mark.parametrize(
    ("code", "expected"),
    [("zh-hant", "zh"), ("zh-HK", "zh"), ("zh", "zh"), ("en", "en"), ("fr", "en"), (None, "en")],
)
def test_telegram_language_codes_pick_the_language(code: str | None, expected: str) -> None:
    assert language_from_code(code) == expected


def test_chinese_texts_are_chinese() -> None:
    assert t("zh", "stopped") != t("en", "stopped")
    assert "繁體中文" in t("zh", "lang_set")
