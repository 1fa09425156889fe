"""compose_digest / compose_instant: valid Telegram HTML, escaped feed text, parts <= 4096 units."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.delivery.html import TelegramHTMLError, check_telegram_html, visible_text
from bot.digest.compose import (
    MAX_DIGEST_PARTS,
    TITLE_CHARS,
    DigestItem,
    DigestSection,
    compose_digest,
    compose_instant,
)

HK = ZoneInfo("Asia/Hong_Kong")
NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)  # Sun 29 Nov 04:00 in Hong Kong


def item(
    n: int, *, title: str | None = None, link: str | None = None, summary: str = ""
) -> DigestItem:
    return DigestItem(
        release_id=n,
        title=title if title is not None else f"Release number {n}",
        link=link if link is not None else f"https://www.info.gov.hk/gia/general/P{n:06d}.htm",
        summary=summary or f"Lead sentence of release {n}.",
        published_at=NOW - timedelta(minutes=n),
        in_title=False,
    )


def digest(
    sections: list[DigestSection], language: str = "en", total: int | None = None
) -> list[str]:
    count = total if total is not None else sum(len(s.items) + s.more for s in sections)
    parts = compose_digest(sections, language=language, tz=HK, now=NOW, total=count)
    for part in parts:
        check_telegram_html(part)  # Telegram's 4096 after parsing included
    return parts


def test_checker_rejects_what_telegram_rejects() -> None:
    for bad in (
        "<p>x</p>",
        "a &nbsp; b",
        "<b>x",
        "<b><i>x</b></i>",
        "1 < 2",
        '<a href="x" onclick="y">z</a>',
    ):
        with pytest.raises(TelegramHTMLError):
            check_telegram_html(bad)
    check_telegram_html(
        '<b>x</b> &lt;&amp;&#160;&#xA0; <a href="https://x/?a=1&amp;b=&quot;">y</a>'
    )


def test_header_has_the_local_date_and_the_number_of_releases() -> None:
    [part] = digest([DigestSection("Customs", "customs", [item(1), item(2)])])
    first_lines = visible_text(part).splitlines()[:2]
    assert "Sun 29 Nov 2026" in first_lines[0]  # 04:00 on the 29th in Hong Kong
    assert first_lines[1] == "2 new releases"


def test_traditional_chinese_header_and_more_line() -> None:
    items = [item(n) for n in range(12)]
    [part] = digest([DigestSection("海關", "海關", items)], language="zh")
    text = visible_text(part)
    assert "新聞公報摘要" in text and "2026年11月29日" in text and "12 則新公報" in text
    assert "…還有 2 則：/search 海關" in text


def test_titles_link_to_the_release_and_a_summary_line_follows() -> None:
    [part] = digest(
        [DigestSection("Customs", "customs", [item(7, summary="Customs seized goods.")])]
    )
    assert '<a href="https://www.info.gov.hk/gia/general/P000007.htm">Release number 7</a>' in part
    lines = visible_text(part).splitlines()
    assert lines[lines.index("• Release number 7") + 1] == "Customs seized goods."


def test_hostile_feed_text_is_escaped() -> None:
    hostile = item(
        1,
        title='<script>alert("x")</script> Tom & Jerry 🚢',
        link='https://example.org/a?b=1&c="><script>',
        summary="Price&nbsp;list <p>bold</p> 🎉 &amp; more",
    )
    [part] = digest([DigestSection("<b>Customs</b> & co", 'customs "x"', [hostile])])
    assert "<script>" not in part and "<p>" not in part
    assert 'href="https://example.org/a?b=1&amp;c=&quot;&gt;&lt;script&gt;"' in part
    text = visible_text(part)
    assert '<script>alert("x")</script> Tom & Jerry 🚢' in text
    assert "Price&nbsp;list <p>bold</p> 🎉 &amp; more" in text  # shown literally, not interpreted
    assert "<b>Customs</b> & co" in text


def test_non_web_links_are_not_made_into_links() -> None:
    [part] = digest([DigestSection("Customs", "customs", [item(1, link="javascript:alert(1)")])])
    assert "<a " not in part and "Release number 1" in part


def test_summary_is_one_line_trimmed_on_a_word_boundary() -> None:
    words = " ".join(f"word{n}" for n in range(80))
    [part] = digest(
        [DigestSection("Customs", "customs", [item(1, summary="First\nline  " + words)])]
    )
    summary = visible_text(part).splitlines()[-1]
    assert summary.endswith("…") and len(summary) <= 161
    assert summary.startswith("First line word0")
    assert summary[:-1].split(" ")[-1] in words.split(" ")  # the last word is whole


def test_ten_releases_a_topic_then_and_n_more() -> None:
    items = [item(n) for n in range(1, 16)]
    [part] = digest([DigestSection("National security", "national security", items)])
    text = visible_text(part)
    assert text.count("• ") == 10
    assert "…and 5 more: /search national security" in text
    assert "15 new releases" in text


def test_releases_are_newest_first_within_a_topic() -> None:
    shuffled = [item(3), item(1), item(2)]  # item 1 is the newest (published a minute ago)
    [part] = digest([DigestSection("Customs", "customs", shuffled)])
    titles = [line for line in visible_text(part).splitlines() if line.startswith("• ")]
    assert titles == ["• Release number 1", "• Release number 2", "• Release number 3"]


def test_long_digest_splits_between_releases_with_part_numbers() -> None:
    sections = [
        DigestSection(
            f"Topic {t}", f"topic{t}", [item(t * 100 + n, summary="word " * 60) for n in range(10)]
        )
        for t in range(8)
    ]
    parts = digest(sections)
    assert len(parts) == MAX_DIGEST_PARTS  # 80 releases are more than a digest shows
    every_link = [f"P{t * 100 + n:06d}.htm" for t in range(8) for n in range(10)]
    shown = 0
    for link in every_link:  # each release shown whole, in exactly one part, or counted
        holders = [p for p in parts if link in p]
        assert len(holders) <= 1
        if holders:
            shown += 1
            assert re.search(rf'<a href="[^"]*{link}">Release number \d+</a>\n\S', holders[0])
    cut = re.findall(r"…and (\d+) more: /search", "".join(visible_text(p) for p in parts))
    assert shown >= 30 and shown + sum(map(int, cut)) == 80
    for index, part in enumerate(parts[1:], start=2):
        assert visible_text(part).startswith(f"({index}/{len(parts)})")
    assert "(1/" not in parts[0]


def test_five_thousand_character_titles_and_emoji_stay_within_4096() -> None:
    huge = [item(n, title="🚢" * 2500 + "&" * 2500, summary='"' * 5000) for n in range(6)]
    parts = digest([DigestSection("Customs", "customs", huge)])
    assert sum(p.count("<a href=") for p in parts) == 6


def test_a_long_link_and_escapes_keep_the_link_and_the_title_whole() -> None:
    long_link = "https://example.org/?" + "q=%22&" * 150  # 921 characters, 1,521 escaped
    too_long = item(1, title="&" * 200, link=long_link, summary='"' * 400)
    [part] = digest([DigestSection("Customs", "customs", [too_long])])
    assert f'<a href="{long_link.replace("&", "&amp;")}">' in part  # the link survives whole
    lines = visible_text(part).splitlines()
    title_at = lines.index("• " + "&" * 200)  # the title survives whole
    summary = lines[title_at + 1] if title_at + 1 < len(lines) else ""
    assert len(summary) <= 160  # a summary is one line of at most 160 characters


HOSTILE_TITLE = ('&"<>😀' * 56)[:280]  # 280 characters, 1,344 escaped
HOSTILE_SUMMARY = ('"<>&🚢 ' * 200)[:1000]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_a_hostile_feed_makes_a_short_digest_whatever_it_contains(language: str) -> None:
    """300 releases of escapes and emoji over 30 topics: a few parts, every topic accounted for."""
    sections = [
        DigestSection(
            f"Topic {t}",
            f"topic{t}",
            [item(t * 10 + n, title=HOSTILE_TITLE, summary=HOSTILE_SUMMARY) for n in range(10)],
        )
        for t in range(30)
    ]

    parts = digest(sections, language)

    assert 1 <= len(parts) <= MAX_DIGEST_PARTS  # was 180 messages for one /digest
    text = "\n".join(visible_text(p) for p in parts)
    for line in text.splitlines():
        if line.startswith("• "):
            assert len(line) <= 2 + TITLE_CHARS  # the title is capped
    more = (
        r"…and (\d+) more: /search (\S+)" if language == "en" else r"…還有 (\d+) 則：/search (\S+)"
    )
    cut = {query: int(n) for n, query in re.findall(more, text)}
    shown = text.count("• ")
    assert shown >= 10  # the first topics are shown, not only "more" lines
    assert shown + sum(cut.values()) == 300  # every release is shown or counted in a cut topic
    assert set(cut) >= {f"topic{t}" for t in range(10, 30)}  # every cut topic says /search
    assert visible_text(parts[0]).splitlines()[1] in ("300 new releases", "300 則新公報")


def test_nothing_matched_composes_nothing() -> None:
    assert compose_digest([], language="en", tz=HK, now=NOW, total=0) == []
    assert compose_instant([DigestSection("Customs", "customs", [])], language="en", total=0) == []


def test_instant_alert_lists_every_release_of_the_poll() -> None:
    [part] = compose_instant(
        [DigestSection("Customs", "customs", [item(1), item(2), item(3)])], language="en", total=3
    )
    check_telegram_html(part)
    text = visible_text(part)
    assert "3 new releases" in text
    assert all(f"Release number {n}" in text for n in (1, 2, 3))


def test_the_manage_button_is_the_mini_app_in_private_chats_only() -> None:
    import json

    from bot.digest.compose import manage_markup

    url = "https://digest.example.org/app"
    [[private]] = json.loads(manage_markup("en", private=True, mini_app_url=url))["inline_keyboard"]
    assert private == {"text": "⚙️ Manage topics", "web_app": {"url": url}}
    # Telegram refuses web_app inline buttons outside private chats; no Mini App, no web_app
    for markup in (
        manage_markup("zh", private=False, mini_app_url=url),
        manage_markup("zh", private=True, mini_app_url=None),
    ):
        [[button]] = json.loads(markup)["inline_keyboard"]
        assert button == {"text": "⚙️ 管理主題", "callback_data": "v1:manage"}
