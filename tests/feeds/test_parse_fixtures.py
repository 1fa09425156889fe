"""Every fixture feed parses to the releases a reader would expect (no network here)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.feeds.errors import FeedError
from bot.feeds.parse import ParsedFeed, parse_feed, strip_doctype
from tests.doubles.feed_server import quadratic_blowup_feed

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NAMED_REASON = re.compile(r"^[a-z][a-z0-9_]*: \S.*$")


def parse_fixture(
    path: Path, url: str | None = None, content_type: str = "application/xml"
) -> ParsedFeed:
    return parse_feed(
        path.read_bytes(),
        url=url or f"https://feeds.example.org/{path.name}",
        content_type=content_type,
        now=NOW,
    )


def test_hk_english_seed_gives_the_customs_conference_and_the_national_security_statement(
    feeds_dir: Path,
) -> None:
    feed = parse_fixture(feeds_dir / "hk-gia-general-en-seed.xml")

    assert feed.title == "HKSAR Government Press Releases"
    assert feed.language == "en"
    assert len(feed.items) == 2
    security, customs = feed.items
    assert security.title == (
        "HKSAR Government strongly condemns US senators' despicable attempt to intimidate "
        "HKSAR personnel safeguarding national security"
    )
    assert security.link == "https://www.info.gov.hk/gia/general/202505/17/P2025051700001.htm"
    assert security.guid == security.link
    assert security.published_at == datetime(2025, 5, 17, 12, 30, tzinfo=UTC)  # 20:30 +0800
    assert (
        customs.title
        == "Conference on Simplification of Procedures and Best Practices for E-commerce concludes"
    )
    assert customs.link == "https://www.info.gov.hk/gia/general/202504/17/P2025041700002.htm"
    assert customs.published_at == datetime(2025, 4, 17, 10, 52, tzinfo=UTC)
    assert customs.summary == (
        "Hong Kong Customs, in the capacity of the World Customs Organization (WCO) "
        "Vice-Chairperson for the Asia/Pacific (A/P) Region, and the Association of…"
    )
    for item in feed.items:
        assert len(item.summary) <= 160
        assert item.language == "en"
        # &nbsp; indents decoded and collapsed; no markup; paragraphs on their own lines
        assert "&nbsp;" not in item.body and "<br" not in item.body and "\xa0" not in item.body
        assert item.body.count("\n") >= 4
    assert customs.body.startswith(
        "Hong Kong Customs, in the capacity of the World Customs Organization"
    )
    assert customs.body.splitlines()[1].startswith(
        "This marks the first time for Hong Kong Customs"
    )


def test_hk_chinese_subset_gives_twelve_releases_with_customs_and_national_security(
    feeds_dir: Path,
) -> None:
    feed = parse_fixture(feeds_dir / "hk-gia-general-zh-2026-10-05-subset.xml")

    assert len(feed.items) == 12
    by_number = {item.link.rsplit("/", 1)[1]: item for item in feed.items}
    customs = by_number["P2026100200770.htm"]
    assert customs.title == "香港海關拘捕瑜伽中心董事涉嫌以不良營商手法銷售服務"
    assert customs.published_at == datetime(2026, 10, 2, 13, 45, tzinfo=UTC)
    assert customs.language == "zh"
    # the lead sentence, cut at the Chinese full stop
    assert customs.summary == (
        "香港海關今日（十月二日）拘捕一名連鎖瑜伽中心男董事，他涉嫌於銷售服務時作出不當地接受"
        "付款的營業行為，違反《商品說明條例》（《條例》）。"
    )
    security = by_number["P2026100500566.htm"]
    assert security.title == "香港特區立法會強烈反對和不滿英國外交部印太事務官員對支聯會案的評論"
    assert "香港國安法" in security.body
    # "下稿代立法會秘書處發出：" introduces the release; the summary is its first sentence
    assert security.summary.startswith("香港特別行政區（特區）立法會發言人今日（十月五日）")
    assert security.summary.endswith("。")
    assert all(
        item.link.startswith("https://www.info.gov.hk/gia/general/2026") for item in feed.items
    )
    # lastBuildDate is stuck in 2016: nothing takes its date from it
    assert all(item.published_at.year == 2026 for item in feed.items)


def test_hko_typhoon_links_with_leading_whitespace_are_trimmed(feeds_dir: Path) -> None:
    feed = parse_fixture(feeds_dir / "hk-hko-current-weather-typhoon-signal-3-en.xml")

    (item,) = feed.items
    assert item.link == "http://www.weather.gov.hk/wxinfo/currwx/current.htm"
    assert item.guid == "http://rss.weather.gov.hk/rss/CurrentWeather/20190731100200"
    assert item.title == "Bulletin updated at 10:02 HKT 31/07/2019"
    assert item.published_at == datetime(2019, 7, 31, 2, 2, tzinfo=UTC)
    assert "The Tropical Cyclone Signal No. 3 has been issued." in item.body
    assert "<" not in item.body


def test_gdacs_with_a_byte_order_mark_parses(feeds_dir: Path) -> None:
    feed = parse_fixture(feeds_dir / "eu-jrc-gdacs-alerts-rss.xml")

    assert len(feed.items) == 4
    first = feed.items[0]
    assert first.title.startswith("Green alert for tropical cyclone CALVINIA-19.")
    assert first.link == "http://www.gdacs.org/report.aspx?eventtype=TC&eventid=1000643"
    assert first.published_at == datetime(2019, 12, 29, 12, 0, tzinfo=UTC)


def test_debian_rdf_keeps_wrapped_text_as_one_paragraph(feeds_dir: Path) -> None:
    (item,) = parse_fixture(feeds_dir / "debian-news-rss1-rdf.xml").items

    assert item.title == "Updated Debian 11: 11.6 released"
    assert item.link == "https://www.debian.org/News/2022/20221217"
    assert item.published_at == datetime(2022, 12, 17, tzinfo=UTC)
    assert item.summary == (
        "The Debian project is pleased to announce the sixth update of its stable distribution "
        "Debian 11 (codename bullseye)."
    )


def test_atom_feeds_heise_and_feedburner(feeds_dir: Path) -> None:
    heise = parse_fixture(feeds_dir / "heise-developer-atom-de.xml")
    assert len(heise.items) == 15
    assert heise.items[0].title == "Java-Anwendungsserver: Red Hat gibt WildFly 10 frei"
    assert heise.items[0].guid == "http://heise.de/-3088438"
    assert heise.items[0].published_at == datetime(2016, 2, 1, 16, 22, tzinfo=UTC)
    assert heise.items[0].language == "de"

    blog = parse_fixture(feeds_dir / "google-ads-dev-blog-feedburner-atom-large.xml")
    assert len(blog.items) == 25
    first = blog.items[0]
    assert first.title == "AdWords and DFP Java client library will soon require Java 7+"
    assert first.link.startswith("http://feedproxy.google.com/~r/blogspot/")
    assert first.summary == (
        "After November 2016, all releases of the Google Ads API Java Client Library will only "
        "be compatible with Java 7 (1.7) and higher."
    )


def test_guardian_gives_fifty_five_releases(feeds_dir: Path) -> None:
    feed = parse_fixture(feeds_dir / "guardian-us-rss2-large.xml")

    assert len(feed.items) == 55
    assert len({item.link for item in feed.items}) == 55
    first = feed.items[0]
    assert first.title == "Trump State of the Union address promised unity but emphasized discord"
    assert first.published_at == datetime(2018, 1, 31, 7, 26, 5, tzinfo=UTC)
    assert first.summary.startswith("The president’s ‘new American moment’ speech")


def test_every_main_fixture_gives_titled_releases_with_absolute_links_and_utc_dates(
    feeds_dir: Path,
) -> None:
    files = sorted(feeds_dir.glob("*.xml"))
    assert len(files) >= 10
    for path in files:
        feed = parse_fixture(path)
        assert feed.items, path.name
        for item in feed.items:
            assert item.title and item.title == " ".join(item.title.split()), path.name
            assert re.match(r"^https?://[^\s/]+/?", item.link), (path.name, item.link)
            assert (
                item.published_at.tzinfo is not None
                and item.published_at.utcoffset().total_seconds() == 0
            )
            assert len(item.summary) <= 161, (path.name, item.summary)
            assert (
                "<p>" not in item.body and "<br" not in item.body and "&nbsp;" not in item.body
            ), path.name


def _declared_headers(path: Path) -> dict[str, str]:
    """feedparser's test files declare the HTTP headers they assume in a leading comment."""
    text = path.read_bytes()[:600].decode("latin-1")
    return {
        m.group(1).lower(): m.group(2).strip()
        for m in re.finditer(r"Header:\s*([\w-]+):\s*([^\n]+)", text)
    }


def test_every_tricky_file_parses_or_fails_with_a_named_reason(feeds_dir: Path) -> None:
    files = sorted(p for p in (feeds_dir / "tricky").rglob("*") if p.is_file())
    assert len(files) >= 50
    parsed, failed = 0, 0
    for path in files:
        headers = _declared_headers(path)
        try:
            feed = parse_feed(
                path.read_bytes(),
                url=headers.get("content-location", f"https://tricky.example.org/{path.name}"),
                content_type=headers.get("content-type", "application/xml"),
                now=NOW,
            )
        except FeedError as exc:
            assert NAMED_REASON.match(str(exc)), (path, str(exc))
            failed += 1
            continue
        parsed += 1
        for item in feed.items:
            assert item.title and item.link.startswith(("http://", "https://")), path
    assert parsed >= 20 and failed >= 10


@pytest.mark.parametrize(
    ("name", "outcome"),
    [
        ("tricky/feedparser/illformed/rss_empty_document.xml", "unparseable"),
        ("tricky/feed-rs/rss_2.0_invalid_1.xml", "no items"),  # a valid feed, healthy
        ("tricky/rss-parser/missing-fields.atom", "empty"),  # an entry with nothing in it
        (
            "tricky/feedparser/illformed/always_strip_doctype.xml",
            "no items",
        ),  # XHTML DOCTYPE, still RSS
        ("tricky/feedjira/InvalidDateFormat.xml", "ok"),  # bozo, but its entries are usable
        ("tricky/rss-parser/uolNoticias.rss", "ok"),
        ("tricky/node-feedparser/iconv.xml", "ok"),
    ],
)
def test_tricky_files_outcomes(feeds_dir: Path, name: str, outcome: str) -> None:
    try:
        feed = parse_fixture(feeds_dir / name)
    except FeedError as exc:
        assert exc.kind == outcome, str(exc)
    else:
        assert (outcome, bool(feed.items)) in (("ok", True), ("no items", False))


def test_relative_links_are_resolved_against_the_feed_url(feeds_dir: Path) -> None:
    feed = parse_fixture(
        feeds_dir / "tricky/node-feedparser/rss-with-relative-urls.xml",
        url="https://games.example.net/news/rss",
    )
    assert feed.items[0].link.startswith("https://games.example.net/en/games/neverwinter/news/")


def test_a_quadratic_entity_blowup_stays_small_and_fast() -> None:
    body = quadratic_blowup_feed()
    assert 40_000 < len(body) < 50_000

    started = time.perf_counter()
    feed = parse_feed(
        body, url="https://example.org/feed", content_type="application/rss+xml", now=NOW
    )
    elapsed = time.perf_counter() - started

    assert elapsed < 2.0
    assert all(len(item.title) <= 1000 and len(item.body) < 100_000 for item in feed.items)
    assert "x" * 100 not in feed.items[0].title  # the entity was never expanded


def test_strip_doctype_removes_the_internal_subset_only_in_the_prolog() -> None:
    doc = b'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY a "]>x">]>\n<rss><channel/></rss>'
    assert strip_doctype(doc) == b'<?xml version="1.0"?>\n\n<rss><channel/></rss>'
    in_text = (
        b"<rss><channel><description><![CDATA[<!DOCTYPE html>]]></description></channel></rss>"
    )
    assert strip_doctype(in_text) == in_text


def test_a_body_that_is_a_local_path_is_never_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_text(
        '<rss version="2.0"><channel><item><title>TOP SECRET</title></item></channel></rss>'
    )

    with pytest.raises(FeedError) as caught:
        parse_feed(
            str(secret).encode(),
            url="https://example.org/feed",
            content_type="application/xml",
            now=NOW,
        )

    assert caught.value.kind == "not_a_feed"
    assert "TOP SECRET" not in str(caught.value)


def test_an_html_page_is_not_a_feed() -> None:
    page = b"<!DOCTYPE html><html><head><title>Home</title></head><body>hi</body></html>"
    with pytest.raises(
        FeedError, match=r"^not_a_feed: the server sent an HTML page \(text/html\)$"
    ):
        parse_feed(
            page, url="https://example.org/", content_type="text/html; charset=utf-8", now=NOW
        )


@pytest.mark.parametrize(("name", "codec"), [("big5.xml", "big5"), ("gb2312.xml", "gb2312")])
def test_real_big5_and_gb2312_captures_without_a_charset_are_decoded(
    feeds_dir: Path, name: str, codec: str
) -> None:
    raw = (feeds_dir / "tricky/feedparser/illformed/chardet" / name).read_bytes()
    written = raw.decode(codec)  # what the publisher wrote

    feed = parse_fixture(feeds_dir / "tricky/feedparser/illformed/chardet" / name)

    shown = [feed.title] if feed.title else [item.title for item in feed.items]
    assert shown and all(text and text in written for text in shown), shown
