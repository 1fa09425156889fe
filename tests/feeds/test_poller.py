"""Polling and storing: conditional GET, dedup, updates, backoff, redirects, announce, leases."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiohttp import web
from sqlmodel import select

from bot.db import SessionFactory
from bot.feeds import poller
from bot.feeds.errors import FeedInputError
from bot.feeds.poller import list_feeds, remove_feed, sync_configured_feeds
from bot.models import Feed, FeedEntry, Release, StoredBatch, utcnow
from bot.pipeline import add_feed, poll_all, poll_due
from tests.doubles.feed_server import FeedServer, rss
from tests.feeds.conftest import StoredCall, make_settings

ITEM_A = {
    "title": "Customs seizes goods",
    "link": "https://gov.example/a",
    "guid": "tag:gov.example,2025:a",
    "description": "<p>A.</p>",
}
ITEM_B = {
    "title": "Typhoon signal",
    "link": "https://gov.example/b",
    "guid": "tag:gov.example,2025:b",
    "description": "<p>B.</p>",
}
ITEM_C = {
    "title": "New budget",
    "link": "https://gov.example/c",
    "guid": "tag:gov.example,2025:c",
    "description": "<p>C.</p>",
}


async def feed_row(sessions: SessionFactory, url: str) -> Feed:
    async with sessions() as s:
        return (await s.exec(select(Feed).where(Feed.url == url))).one()


async def releases(sessions: SessionFactory) -> list[Release]:
    async with sessions() as s:
        return list((await s.exec(select(Release).order_by(Release.id))).all())


async def test_second_poll_sends_the_validators_and_is_not_modified(
    sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    url = feed_server.add_feed(
        "/news.xml", rss([ITEM_A]), etag='"v1"', last_modified="Sat, 17 May 2025 12:31:00 GMT"
    )
    await sync_configured_feeds(sessions, [url])
    settings = make_settings()

    (first,) = await poll_all(sessions, settings)
    (second,) = await poll_all(sessions, settings)

    assert (first.status, first.new) == ("ok", 1)
    assert (second.status, second.new, second.updated) == ("not_modified", 0, 0)
    request = feed_server.requests_for("/news.xml")[1]
    assert request.headers["if-none-match"] == '"v1"'
    assert request.headers["if-modified-since"] == "Sat, 17 May 2025 12:31:00 GMT"
    assert len(stored_calls) == 1


async def test_a_200_with_the_same_body_is_not_modified(
    sessions, feed_server: FeedServer, stored_calls
) -> None:
    url = feed_server.add_feed("/plain.xml", rss([ITEM_A]))  # no validators at all
    await sync_configured_feeds(sessions, [url])

    reports = [(await poll_all(sessions, make_settings()))[0] for _ in range(2)]

    assert [r.status for r in reports] == ["ok", "not_modified"]


async def test_first_poll_is_not_news_and_later_new_items_are(
    any_sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    url = feed_server.add_feed("/news.xml", rss([ITEM_A, ITEM_B]))
    await sync_configured_feeds(any_sessions, [url])
    settings = make_settings()

    (first,) = await poll_all(any_sessions, settings)
    feed_server.set_feed_body("/news.xml", rss([ITEM_C, ITEM_A, ITEM_B]))
    (second,) = await poll_all(any_sessions, settings)
    (third,) = await poll_all(any_sessions, settings)  # same body again

    assert (first.new, second.new, third.new) == (2, 1, 0)
    stored = await releases(any_sessions)
    by_link = {r.link: r for r in stored}
    assert len(stored) == 3
    assert [c.announce for c in stored_calls] == [False, True]
    assert sorted(stored_calls[0].new_ids) == sorted(
        [by_link[ITEM_A["link"]].id, by_link[ITEM_B["link"]].id]
    )
    assert (
        stored_calls[1].new_ids == [by_link[ITEM_C["link"]].id]
        and stored_calls[1].updated_ids == []
    )
    assert by_link[ITEM_A["link"]].announce is False and by_link[ITEM_C["link"]].announce is True
    row = await feed_row(any_sessions, url)
    assert row.item_count == 3 and row.title == "Test feed"


async def test_two_feeds_with_the_same_release_each_keep_their_own_row_shown_once(
    any_sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    one = feed_server.add_feed("/one.xml", rss([ITEM_A]))
    await sync_configured_feeds(any_sessions, [one])
    await poll_all(any_sessions, make_settings())
    two = feed_server.add_feed(
        "/two.xml", rss([{**ITEM_A, "guid": "tag:other.example,2025:a"}, ITEM_B])
    )
    await sync_configured_feeds(any_sessions, [two])

    reports = {r.url: r for r in await poll_all(any_sessions, make_settings())}

    stored = await releases(any_sessions)
    first, copy, other = stored
    assert (first.link, copy.link, other.link) == (ITEM_A["link"], ITEM_A["link"], ITEM_B["link"])
    assert copy.duplicate_of == first.id and first.duplicate_of is None
    assert other.duplicate_of is None
    assert (reports[one].status, reports[one].new) == ("not_modified", 0)
    assert reports[two].new == 2  # the second feed's own rows, one of them a copy
    async with any_sessions() as s:
        entries = (await s.exec(select(FeedEntry))).all()
        feeds = {f.url: f.id for f in (await s.exec(select(Feed))).all()}
    assert {(e.feed_id, e.release_id) for e in entries} == {
        (feeds[one], first.id),
        (feeds[two], copy.id),
        (feeds[two], other.id),
    }
    assert (first.feed_id, copy.feed_id) == (feeds[one], feeds[two])


async def test_a_changed_entry_updates_its_release_in_place(
    any_sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    url = feed_server.add_feed("/news.xml", rss([ITEM_A, ITEM_B]))
    await sync_configured_feeds(any_sessions, [url])
    settings = make_settings()
    await poll_all(any_sessions, settings)
    (before,) = [r for r in await releases(any_sessions) if r.guid == ITEM_A["guid"]]

    corrected = {**ITEM_A, "title": "Customs seizes goods (corrected)"}
    feed_server.set_feed_body("/news.xml", rss([corrected, ITEM_B]))
    (report,) = await poll_all(any_sessions, settings)

    assert (report.status, report.new, report.updated) == ("ok", 0, 1)
    stored = await releases(any_sessions)
    assert len(stored) == 2
    (after,) = [r for r in stored if r.guid == ITEM_A["guid"]]
    assert after.id == before.id and after.title == "Customs seizes goods (corrected)"
    assert after.updated_at > before.updated_at
    assert stored_calls[-1].updated_ids == [before.id] and stored_calls[-1].new_ids == []


async def test_the_same_feed_twice_in_one_document_stores_each_entry_once(
    any_sessions, feed_server: FeedServer, stored_calls
) -> None:
    url = feed_server.add_feed("/dup.xml", rss([ITEM_A, ITEM_A, ITEM_B]))
    await sync_configured_feeds(any_sessions, [url, url])

    (report,) = await poll_all(any_sessions, make_settings())

    assert report.new == 2
    assert len(await releases(any_sessions)) == 2


async def test_failures_back_off_exponentially_and_success_resets(
    sessions, feed_server: FeedServer, stored_calls
) -> None:
    url = feed_server.add_status("/flaky.xml", 503)
    await sync_configured_feeds(sessions, [url])
    settings = make_settings(poll_interval=60)

    delays = []
    for _ in range(3):
        started = utcnow()
        (report,) = await poll_all(sessions, settings)
        row = await feed_row(sessions, url)
        delays.append((row.next_poll_at - started).total_seconds())
    assert report.error == "http_503: Service Unavailable"
    assert row.consecutive_failures == 3 and row.last_error == report.error
    for failures, delay in enumerate(delays, start=1):
        assert 60 * 2**failures <= delay <= 60 * 2**failures * 1.1 + 2

    feed_server.add_feed("/flaky.xml", rss([ITEM_A]))
    (report,) = await poll_all(sessions, settings)
    row = await feed_row(sessions, url)
    assert report.status == "ok"
    assert (
        row.consecutive_failures == 0 and row.last_error is None and row.last_success_at is not None
    )
    assert 55 <= (row.next_poll_at - utcnow()).total_seconds() <= 61


async def test_backoff_is_capped_at_six_hours(sessions, feed_server: FeedServer) -> None:
    url = feed_server.add_status("/down.xml", 500)
    await sync_configured_feeds(sessions, [url])
    async with sessions() as s:
        row = (await s.exec(select(Feed))).one()
        row.consecutive_failures = 30
        s.add(row)
        await s.commit()

    await poll_all(sessions, make_settings())

    row = await feed_row(sessions, url)
    delay = (row.next_poll_at - utcnow()).total_seconds()
    assert 6 * 3600 - 5 <= delay <= 6 * 3600 * 1.1


async def test_caching_hints_lengthen_the_interval(
    sessions, feed_server: FeedServer, stored_calls
) -> None:
    ttl = feed_server.add_feed("/ttl.xml", rss([ITEM_A], extra_channel="<ttl>60</ttl>"))
    max_age = feed_server.add_feed(
        "/age.xml", rss([ITEM_B]), headers={"Cache-Control": "public, max-age=1800"}
    )
    huge = feed_server.add_feed("/huge.xml", rss([ITEM_C], extra_channel="<ttl>999999</ttl>"))
    busy = feed_server.add_status("/busy.xml", 429, headers={"Retry-After": "7200"})
    await sync_configured_feeds(sessions, [ttl, max_age, huge, busy])

    await poll_all(sessions, make_settings(poll_interval=300))

    now = utcnow()
    rows = {url: await feed_row(sessions, url) for url in (ttl, max_age, huge, busy)}
    assert rows[ttl].min_interval == 3600
    assert rows[max_age].min_interval == 1800
    assert rows[huge].min_interval == 24 * 3600  # capped
    assert timedelta(minutes=59) < rows[ttl].next_poll_at - now <= timedelta(hours=1)
    assert (
        timedelta(hours=1, minutes=59)
        < rows[busy].next_poll_at - now
        <= timedelta(hours=2, seconds=5)
    )


async def test_a_permanent_redirect_updates_the_stored_url(
    any_sessions, feed_server: FeedServer, stored_calls
) -> None:
    new_url = feed_server.add_feed("/new.xml", rss([ITEM_A]))
    old_url = feed_server.add_redirect("/old.xml", new_url, status=301)
    temporary = feed_server.add_redirect("/temp.xml", feed_server.url("/other.xml"), status=302)
    feed_server.add_feed("/other.xml", rss([ITEM_B]))
    await sync_configured_feeds(any_sessions, [old_url, temporary])

    reports = await poll_all(any_sessions, make_settings())

    assert sorted(r.url for r in reports) == sorted([new_url, temporary])
    assert sorted(f.url for f in await list_feeds(any_sessions)) == sorted([new_url, temporary])


async def test_a_permanent_redirect_to_a_known_feed_keeps_the_url(
    sessions, feed_server: FeedServer, stored_calls
) -> None:
    target = feed_server.add_feed("/target.xml", rss([ITEM_A]))
    old_url = feed_server.add_redirect("/old.xml", target, status=308)
    await sync_configured_feeds(sessions, [target, old_url])

    reports = await poll_all(sessions, make_settings())

    assert sorted(r.url for r in reports) == sorted([target, old_url])
    assert len([r for r in await releases(sessions) if r.duplicate_of is None]) == 1


async def test_a_slow_feed_does_not_delay_a_fast_one(
    sessions, feed_server: FeedServer, stored_calls
) -> None:
    slow = feed_server.add_drip("/slow.xml", interval=1.0)
    fast = feed_server.add_feed("/fast.xml", rss([ITEM_A]))
    await sync_configured_feeds(sessions, [slow, fast])
    settings = make_settings(fetch_timeout=3.0)

    started = time.monotonic()
    poll = asyncio.create_task(poll_all(sessions, settings))
    while not await releases(sessions):
        assert not poll.done()
        await asyncio.sleep(0.02)
    fast_done = time.monotonic() - started
    reports = {r.url: r for r in await poll}

    assert fast_done < 1.5  # well before the slow feed's 3 s deadline
    assert (
        reports[fast].status == "ok"
        and reports[slow].error == "timeout: no complete response within 3 s"
    )


async def test_poll_due_feeds_claims_only_due_feeds_and_leases_them(
    any_sessions, feed_server: FeedServer, stored_calls
) -> None:
    due = feed_server.add_feed("/due.xml", rss([ITEM_A]))
    later = feed_server.add_feed("/later.xml", rss([ITEM_B]))
    await sync_configured_feeds(any_sessions, [due, later])
    async with any_sessions() as s:
        row = (await s.exec(select(Feed).where(Feed.url == later))).one()
        row.next_poll_at = utcnow() + timedelta(hours=1)
        s.add(row)
        await s.commit()
    settings = make_settings()

    first, second = await asyncio.gather(
        poll_due(any_sessions, settings), poll_due(any_sessions, settings)
    )

    polled = [r.url for r in [*first, *second]]
    assert polled == [due]  # claimed once, by one of the two workers
    assert len(feed_server.requests_for("/due.xml")) == 1
    assert await poll_due(any_sessions, settings) == []  # next_poll_at moved forward
    reports = await poll_due(any_sessions, settings, now=utcnow() + timedelta(hours=2))
    assert sorted(r.url for r in reports) == sorted([due, later])


async def test_add_feed_accepts_only_http_and_polls_at_once(
    sessions, feed_server: FeedServer, stored_calls
) -> None:
    settings = make_settings()
    for bad in (
        "ftp://example.org/feed.xml",
        "file:///etc/passwd",
        "example.org/feed",
        "javascript:alert(1)",
    ):
        with pytest.raises(FeedInputError) as refused:
            await add_feed(sessions, settings, bad, added_by=42)
        assert refused.value.key == "feed_url_scheme"  # the reply bot.i18n gives
    url = feed_server.add_feed("/added.xml", rss([ITEM_A, ITEM_B]))

    report = await add_feed(sessions, settings, f"  {url} ", added_by=42)

    assert (report.status, report.new, report.url) == ("ok", 2, url)
    assert stored_calls[0].announce is False
    (feed,) = await list_feeds(sessions)
    assert feed.added_by == 42 and feed.item_count == 2 and feed.last_success_at is not None
    with pytest.raises(ValueError, match="already"):
        await add_feed(sessions, settings, url, added_by=42)


async def test_configured_feeds_are_added_and_admin_feeds_stay(
    sessions, feed_server: FeedServer, stored_calls
) -> None:
    admin_url = feed_server.add_feed("/admin.xml", rss([ITEM_A]))
    await add_feed(sessions, make_settings(), admin_url, added_by=1)

    await sync_configured_feeds(
        sessions, ["https://gov.example/en.xml", "https://gov.example/zh.xml"]
    )
    await sync_configured_feeds(sessions, ["https://gov.example/en.xml"])

    urls = [f.url for f in await list_feeds(sessions)]
    assert urls == [admin_url, "https://gov.example/en.xml", "https://gov.example/zh.xml"]
    feed_id = (await list_feeds(sessions))[0].id
    assert feed_id is not None
    assert await remove_feed(sessions, feed_id) is True
    assert await remove_feed(sessions, feed_id) is False
    assert len(await list_feeds(sessions)) == 2
    assert len(await releases(sessions)) == 1  # releases stay when their feed goes


async def test_an_unexpected_exception_becomes_an_internal_error_report(
    sessions, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(poller, "parse_feed", explode)
    url = feed_server.add_feed("/news.xml", rss([ITEM_A]))
    await sync_configured_feeds(sessions, [url])

    (report,) = await poll_all(sessions, make_settings())

    assert report.status == "error" and report.error == "internal: KeyError: 'boom'"
    assert (await feed_row(sessions, url)).last_error == report.error


async def test_every_tricky_file_through_a_full_poll_gives_a_report(
    sessions, feed_server: FeedServer, feeds_dir: Path, stored_calls
) -> None:
    files = sorted(p for p in (feeds_dir / "tricky").rglob("*") if p.is_file())
    urls = [
        feed_server.add_file(f"/t{i}/{p.name}", p, content_type="application/xml")
        for i, p in enumerate(files)
    ]
    await sync_configured_feeds(sessions, urls)

    reports = await poll_all(sessions, make_settings())

    assert len(reports) == len(files)
    for report in reports:
        assert report.status in ("ok", "error")
        if report.status == "error":
            assert report.error and report.error.split(":")[0] in {
                "unparseable",
                "empty",
                "not_a_feed",
            }, report
    # gzip bytes served without Content-Encoding are unzipped first: NSHipster, 25 items
    gzipped = next(r for r in reports if r.url.endswith("invalid-characters-gzipped.xml"))
    assert (gzipped.status, gzipped.new) == ("ok", 25)
    assert sum(r.status == "ok" for r in reports) >= 20


async def test_fetches_are_bounded_and_one_feed_is_never_fetched_twice_at_once(
    sessions, feed_server: FeedServer, stored_calls
) -> None:
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}

    async def slow_feed(request: web.Request) -> web.StreamResponse:
        in_flight[request.path] = in_flight.get(request.path, 0) + 1
        in_flight["all"] = in_flight.get("all", 0) + 1
        for key in (request.path, "all"):
            peak[key] = max(peak.get(key, 0), in_flight[key])
        await asyncio.sleep(0.2)
        in_flight[request.path] -= 1
        in_flight["all"] -= 1
        item = {"title": request.path, "link": f"https://gov.example{request.path}"}
        return web.Response(body=rss([item]), content_type="application/rss+xml")

    urls = [feed_server.route(f"/f{i}.xml", slow_feed) for i in range(5)]
    await sync_configured_feeds(sessions, urls)
    settings = make_settings(fetch_concurrency=2)

    first, second = await asyncio.gather(poll_all(sessions, settings), poll_all(sessions, settings))

    assert len(first) == len(second) == 5
    assert peak["all"] == 2
    assert all(peak[f"/f{i}.xml"] == 1 for i in range(5))
    assert len(await releases(sessions)) == 5


async def test_a_200_with_an_unchanged_etag_but_a_new_body_is_stored(
    sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    # A server that ignores If-None-Match and keeps one ETag (or Last-Modified) for every
    # version: the body we were sent is the truth, so the new release must not be missed.
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=feed_server_body[0],
            content_type="application/rss+xml",
            headers={"ETag": '"constant"', "Last-Modified": "Sat, 17 May 2025 12:31:00 GMT"},
        )

    feed_server_body = [rss([ITEM_A])]
    url = feed_server.route("/constant-etag.xml", handler)
    await sync_configured_feeds(sessions, [url])
    settings = make_settings()

    (first,) = await poll_all(sessions, settings)
    feed_server_body[0] = rss([ITEM_B, ITEM_A])
    (second,) = await poll_all(sessions, settings)
    (third,) = await poll_all(sessions, settings)

    assert (first.status, first.new) == ("ok", 1)
    assert (second.status, second.new) == ("ok", 1)
    assert third.status == "not_modified"


async def test_releases_whose_matching_failed_are_matched_on_the_next_poll(
    any_sessions, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Matching (or queueing instant alerts) fails once, e.g. a database hiccup: the releases
    # of that poll must not stay unmatched forever (they would never reach any digest).
    calls: list[StoredCall] = []
    failures: list[Exception] = []

    async def flaky(sessions, new_ids, updated_ids, *, announce, corrected_ids=(), **_):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        calls.append(StoredCall(list(new_ids), list(updated_ids), announce))

    monkeypatch.setattr("bot.pipeline.on_releases_stored", flaky)
    url = feed_server.add_feed("/news.xml", rss([ITEM_A]), etag='"v1"')
    await sync_configured_feeds(any_sessions, [url])
    settings = make_settings()
    await poll_all(any_sessions, settings)  # first poll: matched fine (nothing fails)
    failures.append(RuntimeError("database is locked"))
    feed_server.set_feed_body("/news.xml", rss([ITEM_B, ITEM_A]), etag='"v2"')

    (stored,) = await poll_all(any_sessions, settings)
    # what was stored stays stored (nothing is undone); its batch waits for the next pass
    assert (stored.status, stored.new) == ("ok", 1)
    (release,) = [r for r in await releases(any_sessions) if r.link == ITEM_B["link"]]
    assert [c.new_ids for c in calls] == [[1]]  # only the first poll's batch went through
    async with any_sessions() as session:
        (waiting,) = (await session.exec(select(StoredBatch))).all()
    assert waiting.new_ids == [release.id] and waiting.attempts == 1
    assert waiting.last_error == "RuntimeError: database is locked"

    (unchanged,) = await poll_all(any_sessions, settings)  # the feed says 304 this time

    assert unchanged.status == "not_modified"
    assert calls[-1].new_ids == [release.id] and calls[-1].announce is True
    async with any_sessions() as session:
        assert (await session.exec(select(StoredBatch))).all() == []
    row = await feed_row(any_sessions, url)
    assert row.item_count == 2 and row.last_error is None


async def test_a_first_poll_whose_matching_failed_is_still_not_news(
    sessions, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[StoredCall] = []
    failures = [ValueError("boom")]

    async def flaky(sessions, new_ids, updated_ids, *, announce, corrected_ids=(), **_):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        calls.append(StoredCall(list(new_ids), list(updated_ids), announce))

    monkeypatch.setattr("bot.pipeline.on_releases_stored", flaky)
    url = feed_server.add_feed("/news.xml", rss([ITEM_A, ITEM_B]))
    await sync_configured_feeds(sessions, [url])

    reports = [(await poll_all(sessions, make_settings()))[0] for _ in range(2)]

    assert [(r.status, r.new) for r in reports] == [("ok", 2), ("not_modified", 0)]
    assert len(calls) == 1 and len(calls[0].new_ids) == 2 and calls[0].announce is False
    assert all(r.announce is False for r in await releases(sessions))


async def test_a_changed_release_whose_matching_failed_is_matched_again(
    sessions, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[StoredCall] = []
    failures: list[Exception] = []

    async def flaky(sessions, new_ids, updated_ids, *, announce, corrected_ids=(), **_):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        calls.append(StoredCall(list(new_ids), list(updated_ids), announce))

    monkeypatch.setattr("bot.pipeline.on_releases_stored", flaky)
    url = feed_server.add_feed("/news.xml", rss([ITEM_A]))
    await sync_configured_feeds(sessions, [url])
    await poll_all(sessions, make_settings())
    failures.append(ValueError("boom"))
    feed_server.set_feed_body("/news.xml", rss([{**ITEM_A, "title": "Customs (corrected)"}]))

    reports = [(await poll_all(sessions, make_settings()))[0] for _ in range(2)]

    assert [(r.status, r.updated) for r in reports] == [("ok", 1), ("not_modified", 0)]
    (release,) = await releases(sessions)
    assert calls[-1].updated_ids == [release.id] and release.title == "Customs (corrected)"


async def test_the_poll_tick_leaves_a_feed_that_addfeed_is_polling_alone(
    any_sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    # /addfeed stores the feed, then polls it; the `run` tick every 15 s must not claim it
    # meanwhile (a second fetch, and the admin told "nothing new" by whichever poll is second).
    fetching = asyncio.Event()
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        fetching.set()
        await release.wait()
        return web.Response(body=rss([ITEM_A, ITEM_B]), content_type="application/rss+xml")

    url = feed_server.route("/added.xml", held)
    settings = make_settings()

    adding = asyncio.create_task(add_feed(any_sessions, settings, url, added_by=1))
    await asyncio.wait_for(fetching.wait(), 5)  # the feed is stored, its first fetch under way
    ticking = asyncio.create_task(poll_due(any_sessions, settings))
    await asyncio.sleep(0.2)
    release.set()
    ticked = await ticking
    report = await adding

    assert ticked == []
    assert (report.status, report.new) == ("ok", 2)
    assert len(feed_server.requests_for("/added.xml")) == 1


async def test_bulletins_under_one_link_with_new_guids_are_each_stored(
    any_sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    # The Hong Kong Observatory's feeds: every bulletin has its own guid but the same link
    # (current.htm). Each new bulletin is news; it must not vanish into the first one.
    page = "https://www.weather.gov.hk/wxinfo/currwx/current.htm"
    first = {
        "title": "Bulletin updated at 10:02 HKT",
        "link": page,
        "guid": "http://rss.weather.gov.hk/rss/CurrentWeather/20190731100200",
        "description": "Tropical Cyclone Signal No. 3 is in force.",
    }
    second = {
        "title": "Bulletin updated at 11:02 HKT",
        "link": page,
        "guid": "http://rss.weather.gov.hk/rss/CurrentWeather/20190731110200",
        "description": "Tropical Cyclone Signal No. 8 is in force.",
    }
    url = feed_server.add_feed("/current.xml", rss([first]))
    await sync_configured_feeds(any_sessions, [url])
    settings = make_settings()
    await poll_all(any_sessions, settings)
    feed_server.set_feed_body("/current.xml", rss([second]))

    (report,) = await poll_all(any_sessions, settings)

    assert (report.status, report.new) == ("ok", 1)
    stored = await releases(any_sessions)
    assert [r.title for r in stored] == [first["title"], second["title"]]
    assert all(r.link.startswith(page) for r in stored)
    assert stored_calls[-1].new_ids == [stored[1].id]


async def test_a_feed_that_renews_every_guid_does_not_duplicate_its_releases(
    sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    url = feed_server.add_feed("/renew.xml", rss([ITEM_A, ITEM_B]))
    await sync_configured_feeds(sessions, [url])
    await poll_all(sessions, make_settings())
    renewed = [{**item, "guid": item["guid"] + "?build=2"} for item in (ITEM_A, ITEM_B)]
    feed_server.set_feed_body("/renew.xml", rss(renewed))

    (report,) = await poll_all(sessions, make_settings())

    assert (report.status, report.new) == ("ok", 0)
    assert len(await releases(sessions)) == 2


async def test_two_admins_adding_the_same_feed_at_once_get_a_clear_answer(
    any_sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    url = feed_server.add_feed("/twice.xml", rss([ITEM_A]))
    settings = make_settings()

    results = await asyncio.gather(
        *(add_feed(any_sessions, settings, url, added_by=n) for n in (1, 2)),
        return_exceptions=True,
    )

    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, ValueError) and "already" in str(e) for e in errors), errors
    assert len(await list_feeds(any_sessions)) == 1


async def test_two_processes_on_one_sqlite_file_fetch_each_due_feed_once(
    sqlite_url: str, feed_server: FeedServer, stored_calls
) -> None:
    """`run`'s poll tick and `press-digest poll` on one SQLite file: SQLite has no SKIP LOCKED."""
    from sqlmodel import SQLModel

    from bot.db import create_engine, session_factory

    engines = [create_engine(sqlite_url) for _ in range(2)]
    async with engines[0].begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    workers = [session_factory(engine) for engine in engines]
    urls = [
        feed_server.add_feed(f"/f{n}.xml", rss([{**ITEM_A, "guid": f"tag:x,2025:{n}"}]))
        for n in range(12)
    ]
    await sync_configured_feeds(workers[0], urls)
    settings = make_settings()

    for _ in range(3):  # the race is a matter of timing: give it several chances
        async with workers[0]() as s:
            for feed in (await s.exec(select(Feed))).all():
                feed.next_poll_at = utcnow() - timedelta(seconds=1)
                s.add(feed)
            await s.commit()
        await asyncio.gather(*(poll_due(w, settings, limit=12) for w in workers))

    fetches = [len(feed_server.requests_for(f"/f{n}.xml")) for n in range(12)]
    assert fetches == [3] * 12
    for engine in engines:
        await engine.dispose()


def _dated(item: dict[str, str], when: datetime) -> dict[str, str]:
    return {**item, "pubDate": format_datetime(when, usegmt=True)}


async def test_a_valid_feed_with_no_items_is_healthy_and_its_first_items_are_news(
    any_sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    url = feed_server.add_feed("/new.xml", rss([]))
    await sync_configured_feeds(any_sessions, [url])
    settings = make_settings()

    (empty,) = await poll_all(any_sessions, settings)
    row = await feed_row(any_sessions, url)
    published = row.created_at + timedelta(seconds=1)
    feed_server.set_feed_body(
        "/new.xml", rss([_dated(ITEM_A, published), _dated(ITEM_B, published)])
    )
    (first,) = await poll_all(any_sessions, settings)

    assert (empty.status, empty.new, empty.error) == ("ok", 0, None)
    assert row.last_error is None and row.consecutive_failures == 0
    assert (first.status, first.new) == ("ok", 2)
    assert [c.announce for c in stored_calls] == [True]
    assert all(r.announce for r in await releases(any_sessions))


async def test_after_failed_first_fetches_what_was_published_since_the_feed_was_added_is_news(
    any_sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    url = feed_server.add_status("/late.xml", 404)
    await sync_configured_feeds(any_sessions, [url])
    settings = make_settings()
    (failed,) = await poll_all(any_sessions, settings)
    added = (await feed_row(any_sessions, url)).created_at
    old = _dated(ITEM_A, added - timedelta(days=2))
    new = _dated(ITEM_B, added + timedelta(seconds=2))
    feed_server.add_feed("/late.xml", rss([new, old]))

    (recovered,) = await poll_all(any_sessions, settings)

    assert failed.status == "error" and (recovered.status, recovered.new) == ("ok", 2)
    by_link = {r.link: r for r in await releases(any_sessions)}
    assert by_link[ITEM_A["link"]].announce is False  # published before the feed was added
    assert by_link[ITEM_B["link"]].announce is True
    assert stored_calls[-1].announce is True


async def test_a_configured_feed_that_moved_permanently_is_not_added_again(
    any_sessions, feed_server: FeedServer, stored_calls
) -> None:
    new_url = feed_server.add_feed("/moved.xml", rss([ITEM_A]))
    old_url = feed_server.add_redirect("/configured.xml", new_url, status=308)
    await sync_configured_feeds(any_sessions, [old_url])
    await poll_all(any_sessions, make_settings())

    await sync_configured_feeds(any_sessions, [old_url])  # the next start, FEEDS unchanged

    (feed,) = await list_feeds(any_sessions)
    assert (feed.url, feed.configured_url) == (new_url, old_url)
    (report,) = await poll_all(any_sessions, make_settings())
    assert report.url == new_url


def _encodable(text: str, codec: str) -> str:
    """`text` without the few characters `codec` has no bytes for."""
    kept = []
    for char in text:
        try:
            char.encode(codec)
        except UnicodeEncodeError:
            continue
        kept.append(char)
    return "".join(kept)


@pytest.mark.parametrize("codec", ["big5", "gb2312"])
async def test_a_chinese_feed_that_declares_no_charset_is_stored_as_written(
    sessions, feed_server: FeedServer, feeds_dir: Path, stored_calls, codec: str
) -> None:
    source = (feeds_dir / "hk-gia-general-zh-2026-10-05-subset.xml").read_text(encoding="utf-8")
    text = _encodable(source.replace(' encoding="utf-8"', "", 1), codec)
    titles = re.findall(r"<item><title><!\[CDATA\[(.*?)\]\]>", text)
    # served with no charset: neither the HTTP header nor the XML declaration names one
    url = feed_server.add_feed("/zh.xml", text.encode(codec), content_type="application/rss+xml")
    await sync_configured_feeds(sessions, [url])

    (report,) = await poll_all(sessions, make_settings())

    assert (report.status, report.new) == ("ok", len(titles)) and len(titles) == 12
    stored = {r.title for r in await releases(sessions)}
    assert stored == set(titles)
    assert (await feed_row(sessions, url)).title == _encodable("香港特區政府新聞公報", codec)
