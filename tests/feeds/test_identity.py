"""Pure decisions about a release's identity: canonical link, fingerprint, same release,
history, correction (plain data in, answer out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.feeds.identity import (
    ReleaseKey,
    canonical_link,
    fingerprint,
    is_correction,
    is_history,
    is_same_release,
)

T0 = datetime(2026, 10, 5, 10, 0, tzinfo=UTC)
PAGE = "https://www.info.gov.hk/gia/general/202610/05/P2026100500566.htm"


@pytest.mark.parametrize(
    "variant",
    [
        PAGE,
        PAGE.replace("https://", "http://"),
        PAGE.replace("www.info.gov.hk", "WWW.Info.Gov.HK"),
        PAGE.replace("www.info.gov.hk", "www.info.gov.hk:443"),
        PAGE.replace("https://www.info.gov.hk", "http://www.info.gov.hk:80"),
        PAGE + "#top",
        PAGE + "?utm_source=rss&utm_medium=feed",
        PAGE + "?fbclid=abc123",
        PAGE + "?gclid=x&utm_campaign=y#section-2",
    ],
)
def test_the_same_page_has_one_canonical_link(variant: str) -> None:
    assert canonical_link(variant) == PAGE


def test_other_parameters_are_kept_and_sorted() -> None:
    assert canonical_link("https://gov.example/news?b=2&utm_source=x&a=1") == (
        "https://gov.example/news?a=1&b=2"
    )
    assert canonical_link("https://gov.example/news?id=1") != canonical_link(
        "https://gov.example/news?id=2"
    )
    assert canonical_link("https://gov.example:8443/a") == "https://gov.example:8443/a"


def test_our_own_stand_in_fragments_are_kept() -> None:
    # entries without a link get "#entry-<hash>": the fragment is all that tells them apart
    one = canonical_link("https://gov.example/feed.xml#entry-0123456789abcdef")
    two = canonical_link("https://gov.example/feed.xml#entry-fedcba9876543210")
    assert one != two


def test_the_fingerprint_ignores_case_spacing_and_width_but_not_words() -> None:
    title, body = "Customs seizes suspected cocaine", "Hong Kong Customs seized 5 kg today."
    same = fingerprint(title, body, PAGE)
    assert (
        fingerprint(
            "CUSTOMS  seizes suspected\ncocaine",
            "Hong Kong Customs seized 5 kg today.",
            "https://other.example/x",
        )
        == same
    )
    assert fingerprint(title, "Hong Kong Customs seized 6 kg today.", PAGE) != same
    assert fingerprint("Customs seizes suspected heroin", body, PAGE) != same


def test_without_text_the_link_tells_entries_apart() -> None:
    assert fingerprint("Press briefing", "", "https://gov.example/a") != fingerprint(
        "Press briefing", "", "https://gov.example/b"
    )


def _key(feed: int, link: str = PAGE, text: str = "t", at: datetime = T0) -> ReleaseKey:
    return ReleaseKey(
        feed, canonical_link(link), fingerprint("Title", text, canonical_link(link)), at
    )


def test_another_feed_with_the_same_text_carries_the_same_release() -> None:
    assert is_same_release(_key(1), _key(2, "https://mirror.example/x", at=T0 + timedelta(hours=5)))
    assert is_same_release(_key(1), _key(2, PAGE + "?utm_source=rss"))


def test_other_text_is_another_release_even_under_the_same_link() -> None:
    assert not is_same_release(_key(1, text="Signal No. 3"), _key(1, text="Signal No. 8"))
    assert not is_same_release(_key(1, text="Signal No. 3"), _key(2, text="Signal No. 8"))


def test_within_one_feed_a_new_link_for_the_same_text_is_a_new_release() -> None:
    assert is_same_release(_key(1), _key(1, PAGE + "?utm_medium=x"))
    assert not is_same_release(_key(1), _key(1, "https://www.info.gov.hk/gia/general/P2.htm"))


def test_the_same_notice_weeks_later_is_news_again() -> None:
    assert not is_same_release(_key(1), _key(2, at=T0 + timedelta(days=21)))


def test_history_is_what_was_published_before_the_feed_was_added() -> None:
    added = datetime(2026, 10, 5, 12, 0, 0, 400_000, tzinfo=UTC)
    before, after = added - timedelta(minutes=1), added + timedelta(minutes=1)
    for first in (True, False):
        assert is_history(before, feed_added_at=added, first_fetch_with_items=first)
        assert not is_history(after, feed_added_at=added, first_fetch_with_items=first)
    # feed dates have whole seconds: the second the feed was added is not before it
    assert not is_history(
        added.replace(microsecond=0), feed_added_at=added, first_fetch_with_items=True
    )


def test_undated_items_are_history_only_in_the_first_fetch_with_items() -> None:
    assert is_history(None, feed_added_at=T0, first_fetch_with_items=True)
    assert not is_history(None, feed_added_at=T0, first_fetch_with_items=False)


BODY = (
    "Hong Kong Customs yesterday (October 4) seized about 5 kilograms of suspected cocaine "
    "with an estimated market value of about $4.5 million at Hong Kong International Airport. "
    "A 30-year-old man was arrested. Customs will continue to step up enforcement."
)


@pytest.mark.parametrize(
    ("new_title", "new_body"),
    [
        ("Customs seizes suspected cocaine", BODY),  # unchanged
        ("Customs  seizes suspected\ncocaine", BODY.replace(" ", "  ")),  # whitespace
        ("Customs seizes suspected cocaine", BODY.replace("enforcement", "enforcment")),  # a typo
        ("CUSTOMS seizes suspected cocaine", BODY.replace("Customs will", "Customs  will")),
    ],
)
def test_small_edits_are_not_corrections(new_title: str, new_body: str) -> None:
    assert not is_correction("Customs seizes suspected cocaine", BODY, new_title, new_body)


@pytest.mark.parametrize(
    ("new_title", "new_body"),
    [
        ("Customs seizes suspected heroin", BODY),  # the title
        ("Customs seizes suspected cocaine", BODY.replace("$4.5 million", "$5.4 million")),
        ("Customs seizes suspected cocaine", BODY.replace("October 4", "October 3")),
        (
            "Customs seizes suspected cocaine",
            BODY.replace(
                "A 30-year-old man was arrested.",
                "No one has been arrested so far and the case is under investigation.",
            ),
        ),
    ],
)
def test_a_new_title_number_date_or_sentence_is_a_correction(new_title: str, new_body: str) -> None:
    assert is_correction("Customs seizes suspected cocaine", BODY, new_title, new_body)
