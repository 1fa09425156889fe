"""bot.urls: the one rule every URL setting and feed address goes through."""

from __future__ import annotations

import re

import pytest

from bot.config import ConfigError, load_settings
from bot.feeds.errors import FeedError, FeedInputError
from bot.feeds.fetch import check_http_url
from bot.feeds.normalise import absolute_http_url
from bot.feeds.poller import check_feed_url
from bot.urls import http_url_problem

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize(
    "url",
    ["https://www.info.gov.hk/gia/rss/general_en.xml", "http://127.0.0.1:8080/feed"],
)
def test_absolute_http_urls_pass_everywhere(url: str) -> None:
    assert http_url_problem(url) is None
    assert http_url_problem(url.upper()) is None
    assert check_feed_url(f"  {url} ") == url
    assert check_http_url(url) == url
    assert absolute_http_url(url, "https://base.example/") == url
    assert load_settings(bot_token=TOKEN, feeds=url).feeds == [url]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.org/feed.xml", "not ftp: URL"),
        ("file:///etc/passwd", "not file: URL"),
        ("/relative/feed.xml", "not a relative URL"),
        ("https:///no-host", "no host name"),
        ("https://exa mple.org/", "no spaces"),
        ("https://example.org:port/", "not a valid URL"),
        ("https://[::1/", "not a valid URL"),
    ],
)
def test_every_check_refuses_the_same_urls_with_the_same_reason(url: str, reason: str) -> None:
    problem = http_url_problem(url)
    assert problem is not None and reason in problem
    with pytest.raises(FeedInputError) as refused:  # /addfeed: a reply in the chat's language
        check_feed_url(url)
    expected = (
        "feed_url_scheme"
        if reason.endswith(": URL") or "relative" in reason
        else "feed_url_invalid"
    )
    assert refused.value.key == expected
    with pytest.raises(FeedError, match=re.escape(reason)):
        check_http_url(url)
    assert absolute_http_url(url, "https://base.example/") != url
    if " " not in url:  # FEEDS is a list split at spaces and commas
        with pytest.raises(ConfigError, match=rf"^FEEDS: .*{re.escape(reason)}"):
            load_settings(bot_token=TOKEN, feeds=url)


def test_public_url_must_be_https_without_query() -> None:
    settings = load_settings(bot_token=TOKEN, public_url="https://bot.example.org/")
    assert settings.mini_app_url == "https://bot.example.org/app"
    for bad in ("http://bot.example.org", "https://bot.example.org/?a=1", "bot.example.org"):
        with pytest.raises(ConfigError, match=r"^PUBLIC_URL: "):
            load_settings(bot_token=TOKEN, public_url=bad)
