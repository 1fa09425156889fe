"""Hostile and broken servers: every poll ends within its deadline with a named reason."""

from __future__ import annotations

import time
from pathlib import Path

from sqlmodel import select

from bot.db import SessionFactory
from bot.feeds.fetch import USER_AGENT
from bot.feeds.poller import PollReport, sync_configured_feeds
from bot.models import Feed, Release
from bot.pipeline import poll_all
from tests.doubles.feed_server import FeedServer, quadratic_blowup_feed, rss
from tests.feeds.conftest import StoredCall, make_settings


async def poll_one(sessions: SessionFactory, url: str, **settings: object) -> PollReport:
    await sync_configured_feeds(sessions, [url])
    reports = await poll_all(sessions, make_settings(**settings))
    (report,) = [r for r in reports if r.url == url]
    return report


async def test_a_dripping_server_times_out_at_the_deadline(
    sessions, feed_server: FeedServer
) -> None:
    url = feed_server.add_drip("/drip.xml", interval=1.0)

    started = time.monotonic()
    report = await poll_one(sessions, url, fetch_timeout=1.5)
    elapsed = time.monotonic() - started

    assert report.status == "error"
    assert report.error == "timeout: no complete response within 1.5 s"
    assert 1.4 < elapsed < 4.0
    async with sessions() as s:
        feed = (await s.exec(select(Feed))).one()
    assert feed.last_error == report.error and feed.consecutive_failures == 1


async def test_an_endless_body_stops_at_the_size_cap(sessions, feed_server: FeedServer) -> None:
    url = feed_server.add_endless("/endless.xml")

    report = await poll_one(sessions, url, max_feed_bytes=2 * 1024 * 1024)

    assert (report.status, report.error) == ("error", "too_large: body over 2 MB")


async def test_a_gzip_bomb_stops_at_the_cap_on_decoded_bytes(
    sessions, feed_server: FeedServer
) -> None:
    url = feed_server.add_gzip_bomb("/bomb.xml", inflated_mb=1024)

    started = time.monotonic()
    report = await poll_one(sessions, url, max_feed_bytes=2 * 1024 * 1024)

    assert (report.status, report.error) == ("error", "too_large: body over 2 MB")
    assert time.monotonic() - started < 5


async def test_a_redirect_loop_gives_up_after_five(sessions, feed_server: FeedServer) -> None:
    url = feed_server.add_redirect_loop("/loop.xml")

    report = await poll_one(sessions, url)

    assert report.error == "too_many_redirects: more than 5"
    assert len(feed_server.requests_for("/loop.xml")) == 6  # the first request and 5 redirects


async def test_a_redirect_to_another_scheme_is_refused(sessions, feed_server: FeedServer) -> None:
    url = feed_server.add_redirect("/to-file.xml", "file:///etc/passwd", status=302)

    report = await poll_one(sessions, url)

    assert report.status == "error" and report.error is not None
    assert report.error.startswith("bad_url: redirected to a URL we do not fetch")


async def test_an_html_page_is_named_not_a_feed(sessions, feed_server: FeedServer) -> None:
    url = feed_server.add_html_page("/index.html")

    report = await poll_one(sessions, url)

    assert report.error == "not_a_feed: the server sent an HTML page (text/html)"


async def test_http_errors_are_named_by_status(sessions, feed_server: FeedServer) -> None:
    missing = feed_server.url("/missing.xml")  # the server answers 404 for unknown paths
    broken = feed_server.add_status("/broken.xml", 500)
    await sync_configured_feeds(sessions, [missing, broken])

    reports = {r.url: r for r in await poll_all(sessions, make_settings())}

    assert reports[missing].error == "http_404: Not Found"
    assert reports[broken].error == "http_500: Internal Server Error"


async def test_connection_refused_is_named(sessions, unused_tcp_port: int) -> None:
    report = await poll_one(sessions, f"http://127.0.0.1:{unused_tcp_port}/feed.xml")

    assert report.error == "connect: connection refused"


async def test_a_quadratic_entity_blowup_is_polled_fast_and_stays_small(
    sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    url = feed_server.add_feed("/blowup.xml", quadratic_blowup_feed())

    started = time.monotonic()
    report = await poll_one(sessions, url)

    assert time.monotonic() - started < 3
    assert report.status == "ok" and report.new == 1
    async with sessions() as s:
        release = (await s.exec(select(Release))).one()
    assert len(release.title) <= 1000
    assert "x" * 100 not in release.title


async def test_a_body_that_is_a_local_file_path_never_leaks_that_file(
    sessions, feed_server: FeedServer, tmp_path: Path, stored_calls: list[StoredCall]
) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_text(
        '<rss version="2.0"><channel><item><title>SECRET-CONTENT-42</title>'
        "<link>https://example.org/secret</link></item></channel></rss>"
    )
    url = feed_server.add_path_body("/path.xml", str(secret))

    report = await poll_one(sessions, url)

    assert (
        report.status == "error"
        and report.error is not None
        and report.error.startswith("not_a_feed:")
    )
    async with sessions() as s:
        releases = (await s.exec(select(Release))).all()
    assert all("SECRET-CONTENT-42" not in r.title + r.body for r in releases)
    assert releases == []


async def test_requests_name_the_bot_and_gzip_bodies_are_decoded(
    sessions, feed_server: FeedServer
) -> None:
    body = rss([{"title": "Zipped", "link": "https://example.org/zipped", "guid": "z1"}])
    url = feed_server.add_feed("/zipped.xml", body, gzip=True)

    report = await poll_one(sessions, url)

    assert report.status == "ok" and report.new == 1
    seen = feed_server.requests_for("/zipped.xml")[0]
    assert seen.headers["user-agent"] == USER_AGENT
    assert (
        USER_AGENT.startswith("press-digest/")
        and "(+https://github.com/press-digest/press-digest)" in USER_AGENT
    )


async def test_a_tls_failure_is_named(sessions, feed_server: FeedServer) -> None:
    plain_http = feed_server.add_feed(
        "/feed.xml", rss([{"title": "t", "link": "https://example.org/t"}])
    )

    report = await poll_one(sessions, plain_http.replace("http://", "https://"))

    assert report.status == "error" and report.error is not None
    assert report.error.startswith("tls: "), report.error


async def test_nul_controls_and_bidi_overrides_never_reach_the_database_or_telegram(
    any_sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    # One bad item (NUL: PostgreSQL refuses it in text) must not fail the whole feed forever.
    bad = {
        "title": "Customs&#0; seizes\x01 goods \u202eevil",
        "link": "https://gov.example/nul",
        "description": "<p>Officers\x00 seized goods.\x1b</p>",
    }
    good = {"title": "Typhoon signal", "link": "https://gov.example/ok", "description": "B."}
    url = feed_server.add_feed("/nul.xml", rss([bad, good]))

    report = await poll_one(any_sessions, url)

    assert (report.status, report.new) == ("ok", 2), report
    async with any_sessions() as s:
        stored = {r.link: r for r in (await s.exec(select(Release))).all()}
    release = stored["https://gov.example/nul"]
    assert release.title == "Customs seizes goods evil"
    assert release.summary == "Officers seized goods."
    assert "\x00" not in release.body and "\x1b" not in release.body


async def test_surrogate_character_references_do_not_fail_the_feed(
    sessions, feed_server: FeedServer, stored_calls: list[StoredCall]
) -> None:
    # "&#55357;&#56832;" is how some CMSs write 😀 (a UTF-16 pair); a lone half is garbage
    items = [
        {"title": "Smile &#55357;&#56832; please", "link": "https://gov.example/pair"},
        {"title": "Half &#xD83D; a pair", "link": "https://gov.example/half"},
    ]
    url = feed_server.add_feed("/surrogates.xml", rss(items))

    report = await poll_one(sessions, url)

    assert (report.status, report.new) == ("ok", 2), report
    async with sessions() as s:
        titles = sorted(r.title for r in (await s.exec(select(Release))).all())
    assert titles == ["Half \ufffd a pair", "Smile \U0001f600 please"]
