"""The message catalogue: both languages complete, every text valid Telegram HTML."""

from __future__ import annotations

import pytest

from bot.i18n import CATALOGUES, EN, ZH, Html, language_from_code, placeholders, t, t_plain
from tests.doubles.telegram_api import parse_html


def test_both_catalogues_have_the_same_keys() -> None:
    assert set(EN) == set(ZH)


@pytest.mark.parametrize("key", sorted(EN))
def test_both_languages_use_the_same_placeholders(key: str) -> None:
    assert placeholders(EN[key]) == placeholders(ZH[key])


@pytest.mark.parametrize("lang", sorted(CATALOGUES))
@pytest.mark.parametrize("key", sorted(EN))
def test_every_text_is_valid_telegram_html_with_hostile_parameters(lang: str, key: str) -> None:
    params = {name: '<b>&"x"</b>' for name in placeholders(EN[key])}
    rendered = t(lang, key, **params)
    plain, _ = parse_html(rendered)
    assert plain.strip()
    if params:
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
