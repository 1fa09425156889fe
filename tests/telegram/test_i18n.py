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


# limits the bot sets (200 characters, 20 terms, 2 letters before *) and lengths over them
NEVER_ONE = {"limit", "length", "letters", "size"}


def _rendered_with_ones(key: str) -> str:
    """The English text of `key` with every count 1 (so `count` picks KEY_one)."""
    params = {name: 2 if name in NEVER_ONE else 1 for name in placeholders(EN[key])}
    return t_plain("en", key, **params)


@pytest.mark.parametrize("key", sorted(k for k in EN if not k.endswith("_one")))
def test_english_never_says_one_of_a_plural(key: str) -> None:
    import re

    text = _rendered_with_ones(key)
    # "1 more topics", "1 items", "1 new releases", "at least 1 letters"
    wrong = re.findall(r"\b1 (?:more |new |distinct )?(?!(?:is|needs|matches)\b)([a-z]+s)\b", text)
    assert wrong == [], text


def test_more_topics_reads_right_for_any_count() -> None:
    assert t("en", "digest_more_topics", count=1, releases=1) == (
        "…and 1 more in another topic: /list"
    )
    assert t("en", "digest_more_topics", count=1, releases=4) == (
        "…and 4 more in another topic: /list"
    )
    assert t("en", "digest_more_topics", count=2, releases=5) == (
        "…and 5 more in 2 more topics: /list"
    )
    assert t("zh", "digest_more_topics", count=2, releases=5) == "…還有 2 個主題共 5 則：/list"


def test_every_query_and_feed_error_has_a_text_in_both_languages() -> None:
    import re
    from pathlib import Path

    import bot

    root = Path(bot.__file__).parent
    keys: set[str] = set()
    for module in ("matching/query.py", "feeds/poller.py", "subscriptions.py"):
        source = (root / module).read_text()
        keys |= set(re.findall(r'(?:QueryError|FeedInputError|ChatInputError)\(\s*"(\w+)"', source))
    assert {"query_unbalanced_quote", "feed_url_scheme", "time_invalid"} <= keys
    assert keys - set(EN) == set() and keys - set(ZH) == set()


def test_domain_code_does_not_import_i18n() -> None:
    """bot.matching and bot.feeds pass a key and parameters up; they know no language."""
    import ast
    from pathlib import Path

    import bot

    root = Path(bot.__file__).parent
    for path in [*(root / "matching").glob("*.py"), *(root / "feeds").glob("*.py")]:
        tree = ast.parse(path.read_text())
        names = {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert "bot.i18n" not in names, path.name


@pytest.mark.parametrize(
    ("stored", "en", "zh"),
    [
        (
            "http_404: Not Found",
            "the server answered HTTP 404 (Not Found)",
            "伺服器回應 HTTP 404 錯誤",
        ),
        (
            "timeout: no complete response within 30 s",
            "timed out (no complete response within 30 s)",
            "伺服器未能及時回應",
        ),
        (
            "too_large: body over 10 MB",
            "the feed is too large (body over 10 MB)",
            "資訊來源的內容太大",
        ),
        (
            "not_a_feed: the server sent an HTML page (text/html)",
            "not a feed (the server sent an HTML page (text/html))",
            "此網址不是 RSS 或 Atom 資訊來源",
        ),
        ("something odd", "something odd", "其他錯誤"),
        ("brand_new_kind: what", "what", "其他錯誤"),
    ],
)
def test_a_feed_failure_reads_in_the_chats_language(stored: str, en: str, zh: str) -> None:
    from bot.i18n import feed_error

    assert feed_error("en", stored) == en
    assert feed_error("zh", stored) == zh
