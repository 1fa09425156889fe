"""Plain text, summaries, dates, guids and languages of single entries."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bot.feeds.normalise import detect_language, html_to_text, make_summary, normalise_entry

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def entry(**fields: object) -> dict[str, object]:
    return fields


def test_html_becomes_plain_text_with_paragraphs_as_lines() -> None:
    html = (
        "&nbsp;&nbsp;First&nbsp;paragraph &amp; more.<br />\n<br />\n"
        "<p>Second\n   paragraph</p><script>alert('x')</script><style>p{color:red}</style>"
        "<table><tr><td>Cell 1</td><td>Cell 2</td></tr></table>"
        '<div class="photo"><img src="a.jpg" alt="Photo caption"></div>'
    )
    assert (
        html_to_text(html)
        == "First paragraph & more.\nSecond paragraph\nCell 1 Cell 2\nPhoto caption"
    )


def test_plain_text_keeps_blank_line_paragraphs_and_joins_wrapped_lines() -> None:
    assert html_to_text("one\ntwo\n\nthree &eacute;") == "one two\nthree é"


def test_summary_is_the_lead_sentence_cut_at_a_word_boundary() -> None:
    body = "Dr Chan said the U.S. plan is fine. Then more followed."
    assert make_summary(body, "title") == "Dr Chan said the U.S. plan is fine."

    long_sentence = "word " * 60
    summary = make_summary(long_sentence.strip(), "title")
    assert len(summary) <= 160 and summary.endswith("word…")


def test_chinese_summary_ends_at_the_full_stop_and_skips_the_issued_on_behalf_line() -> None:
    body = "下稿代香港金融管理局發出︰\n金管局今日宣布新措施。詳情如下。"
    assert make_summary(body, "標題") == "金管局今日宣布新措施。"


def test_language_comes_from_the_item_then_the_feed_then_the_script() -> None:
    assert detect_language("香港海關今日拘捕一名男子") == "zh"
    assert detect_language("The customs department said on Monday that it was") == "en"
    assert detect_language("Die Regierung hat das Gesetz für die Bürger nicht geändert") == "de"
    item = normalise_entry(
        entry(title="海關", link="https://x.example/1"),
        base_url="https://x.example/",
        feed_language=None,
        now=NOW,
    )
    assert item is not None and item.language == "zh"
    item = normalise_entry(
        entry(title="海關", link="https://x.example/1"),
        base_url="https://x.example/",
        feed_language="en",
        now=NOW,
    )
    assert item is not None and item.language == "en"


def test_guid_falls_back_to_the_link_then_to_a_hash_of_title_and_date() -> None:
    with_link = normalise_entry(
        entry(title="A", link=" /a "),
        base_url="https://x.example/feed",
        feed_language=None,
        now=NOW,
    )
    assert with_link is not None
    assert with_link.link == "https://x.example/a" and with_link.guid == "https://x.example/a"

    bare = normalise_entry(
        entry(title="A", published="Mon, 1 Jan 2024"),
        base_url="https://x.example/feed",
        feed_language=None,
        now=NOW,
    )
    again = normalise_entry(
        entry(title="A", published="Mon, 1 Jan 2024"),
        base_url="https://x.example/feed",
        feed_language=None,
        now=NOW,
    )
    other = normalise_entry(
        entry(title="A", published="Tue, 2 Jan 2024"),
        base_url="https://x.example/feed",
        feed_language=None,
        now=NOW,
    )
    assert bare is not None and again is not None and other is not None
    assert bare.guid.startswith("sha256:") and bare.guid == again.guid != other.guid
    assert bare.link.startswith("https://x.example/feed#entry-")


def test_dates_are_utc_missing_ones_are_first_seen_and_far_future_ones_clamped() -> None:
    def at(t: datetime) -> time.struct_time:
        return t.utctimetuple()

    base = {"title": "A", "link": "https://x.example/a"}
    dated = normalise_entry(
        {**base, "published_parsed": at(datetime(2025, 5, 17, 12, 30))},
        base_url="https://x.example/",
        feed_language=None,
        now=NOW,
    )
    undated = normalise_entry(base, base_url="https://x.example/", feed_language=None, now=NOW)
    future = normalise_entry(
        {**base, "published_parsed": at(NOW + timedelta(days=30))},
        base_url="https://x.example/",
        feed_language=None,
        now=NOW,
    )
    soon = normalise_entry(
        {**base, "published_parsed": at(NOW + timedelta(hours=3))},
        base_url="https://x.example/",
        feed_language=None,
        now=NOW,
    )

    assert dated is not None and dated.published_at == datetime(2025, 5, 17, 12, 30, tzinfo=UTC)
    assert undated is not None and undated.published_at == NOW
    assert future is not None and future.published_at == NOW
    assert soon is not None and soon.published_at == NOW + timedelta(hours=3)


def test_an_entry_with_nothing_to_show_is_dropped_and_html_titles_are_cleaned() -> None:
    assert (
        normalise_entry(
            entry(id="tag:1"), base_url="https://x.example/", feed_language=None, now=NOW
        )
        is None
    )
    item = normalise_entry(
        entry(
            title="  <b>Typhoon</b>&nbsp;signal\n  No. 8 &amp; rain ", link="https://x.example/t"
        ),
        base_url="https://x.example/",
        feed_language=None,
        now=NOW,
    )
    assert item is not None and item.title == "Typhoon signal No. 8 & rain"


def test_a_zero_date_is_unknown_not_year_one() -> None:
    # Hugo and other Go generators write "Mon, 01 Jan 0001 00:00:00 +0000" for "no date".
    # Stored as year 1, the release could never be shown to a chat west of Greenwich
    # (astimezone overflows), and it would fall out of every "last N days" window.
    from zoneinfo import ZoneInfo

    from bot.feeds.parse import parse_feed

    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        b"<title>Customs seizes goods</title><link>https://x.example/a</link>"
        b"<pubDate>Mon, 01 Jan 0001 00:00:00 +0000</pubDate></item></channel></rss>"
    )
    (item,) = parse_feed(
        body, url="https://x.example/feed.xml", content_type="application/rss+xml", now=NOW
    ).items

    assert item.published_at == NOW
    assert item.published_at.astimezone(ZoneInfo("America/New_York")).year == 2026


def test_a_less_than_sign_in_a_title_is_text_unless_it_opens_a_real_tag() -> None:
    def title(raw: str) -> str:
        item = normalise_entry(
            {"title": raw, "link": "https://x.example/a"},
            base_url="https://x.example/",
            feed_language=None,
            now=NOW,
        )
        assert item is not None
        return item.title

    assert title("Fares <HK$10 and >HK$5 kept") == "Fares <HK$10 and >HK$5 kept"
    assert title("Ratio x<y and z>w") == "Ratio x<y and z>w"
    assert title("Sale of <i>Ming</i> vase &amp; bowl") == "Sale of Ming vase & bowl"
    assert title("Line<br/>break") == "Line break"
