"""The tick's digest from arranged lists (`_assemble_digest`) is `_build_digest`'s digest.

The tick arranges each topic's news once and assembles tens of thousands of digests from
them; /digest's reference rule (`_build_digest`) works from the matches themselves. Random
chats, topics sharing releases, title matches, corrections and more than a section shows:
the sections, their releases in order, the corrected marks, the "more" counts, the total and
the newest match time must all be equal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.digest.compose import DigestItem
from bot.digest.service import (
    _Arranged,
    _assemble_digest,
    _build_digest,
    _Digest,
    _Followed,
    _MatchedRelease,
    _news_of,
)

BASE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = BASE + timedelta(days=40)


@st.composite
def chats(draw: st.DrawFn) -> tuple[list[_Followed], dict[int, list[_MatchedRelease]]]:
    releases = draw(st.integers(1, 40))
    published = [BASE + timedelta(hours=draw(st.integers(0, 20))) for _ in range(releases)]
    corrected = [
        BASE + timedelta(days=draw(st.integers(2, 39))) if draw(st.booleans()) else None
        for _ in range(releases)
    ]
    topics = draw(st.integers(1, 5))
    # labels and canonical queries collide on purpose: the tie-breaks must agree too
    followed = [
        _Followed(
            topic_id=t + 1,
            label=draw(st.sampled_from(["Customs", "customs", "Health", "Trade"])),
            canonical=draw(st.sampled_from(["a", "bb", "ccc"])),
            query_text=f"q{t}",
            since=BASE + timedelta(days=draw(st.integers(0, 30))),
            subscribed_at=BASE - timedelta(days=draw(st.integers(0, 2))),
        )
        for t in range(topics)
    ]
    matches: dict[int, list[_MatchedRelease]] = {}
    for topic in followed:
        chosen = draw(st.lists(st.integers(0, releases - 1), unique=True, max_size=releases))
        matches[topic.topic_id] = [
            _MatchedRelease(
                DigestItem(
                    release_id=r + 1,
                    title=f"t{r}",
                    link=f"https://example.org/{r}",
                    summary="",
                    published_at=published[r],
                    in_title=draw(st.booleans()),
                ),
                topic.topic_id,
                first_seen_at=published[r] - timedelta(days=draw(st.integers(-1, 1))),
                matched_at=BASE + timedelta(days=draw(st.integers(0, 39))),
                corrected_at=corrected[r],
            )
            for r in chosen
        ]
    return followed, matches


def _shape(digest: _Digest) -> object:
    return (
        [
            (s.topic_label, s.topic_query, s.more, [(i.release_id, i.corrected) for i in s.items])
            for s in digest.sections
        ],
        digest.total,
        digest.newest_seen,
    )


@settings(max_examples=400, deadline=None)
@given(chats())
def test_assembled_digest_equals_the_reference_rule(
    chat: tuple[list[_Followed], dict[int, list[_MatchedRelease]]],
) -> None:
    followed, matches = chat
    expected = _build_digest(followed, matches, until=UNTIL)
    news = _news_of(followed, matches, UNTIL, False)
    with_news = [f for f in followed if news[f.topic_id]]
    arranged = {f.topic_id: _Arranged.of(news[f.topic_id]) for f in with_news}
    assert _shape(_assemble_digest(with_news, arranged)) == _shape(expected)


def test_a_release_two_topics_share_is_shown_once_under_the_title_match() -> None:
    """The case the shortcut exists for, written out: shared releases move, the rest stay."""

    def item(release_id: int, in_title: bool) -> DigestItem:
        return DigestItem(release_id, f"t{release_id}", "https://e.org", "", BASE, in_title)

    def matched(topic_id: int, release_id: int, in_title: bool) -> _MatchedRelease:
        seen = BASE + timedelta(days=1)
        return _MatchedRelease(item(release_id, in_title), topic_id, seen, seen)

    topics = [
        _Followed(1, "Alpha", "alpha longer", "alpha", BASE, BASE - timedelta(days=1)),
        _Followed(2, "Beta", "b", "beta", BASE, BASE - timedelta(days=1)),
    ]
    matches = {1: [matched(1, 10, False), matched(1, 11, False)], 2: [matched(2, 10, True)]}
    news = _news_of(topics, matches, UNTIL, False)
    digest = _assemble_digest(topics, {t: _Arranged.of(n) for t, n in news.items()})
    assert _shape(digest) == (
        [("Alpha", "alpha", 0, [(11, False)]), ("Beta", "beta", 0, [(10, False)])],
        2,
        BASE + timedelta(days=1),
    )
