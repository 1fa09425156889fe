"""next_digest_at: local time and timezone to UTC moments, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.digest.schedule import next_digest_at
from bot.digest.service import reschedule
from bot.models import Chat, Frequency

HONG_KONG = ZoneInfo("Asia/Hong_Kong")
LONDON = ZoneInfo("Europe/London")


def chat(zone: str, at: time, frequency: Frequency = Frequency.daily, weekday: int = 0) -> Chat:
    return Chat(
        telegram_id=1, timezone=zone, digest_time=at, frequency=frequency, digest_weekday=weekday
    )


def test_hong_kong_0800_every_day_for_a_week() -> None:
    hk = chat("Asia/Hong_Kong", time(8, 0))
    moment = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    moments = []
    for _ in range(7):
        moment_or_none = next_digest_at(hk, moment)
        assert moment_or_none is not None
        moment = moment_or_none
        moments.append(moment)
    assert moments == [datetime(2026, 11, 28 + i, 0, 0, tzinfo=UTC) for i in range(3)] + [
        datetime(2026, 12, 1 + i, 0, 0, tzinfo=UTC) for i in range(4)
    ]
    assert all(m.astimezone(HONG_KONG).time() == time(8, 0) for m in moments)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # spring forward, Sun 29 Mar 2026: 01:30 does not exist -> 02:00 BST = 01:00 UTC
        (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 30, 0, 30, tzinfo=UTC)),
        # fall back, Sun 25 Oct 2026: 01:30 happens twice -> the first, 01:30 BST = 00:30 UTC
        (datetime(2026, 10, 24, 12, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # ... and only once: after the first 01:30 the next digest is Monday's
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)),
    ],
)
def test_london_0130_on_daylight_saving_change_days(after: datetime, expected: datetime) -> None:
    assert next_digest_at(chat("Europe/London", time(1, 30)), after) == expected


def test_spring_gap_digest_is_at_the_first_valid_local_time() -> None:
    moment = next_digest_at(
        chat("Europe/London", time(1, 30)), datetime(2026, 3, 28, 12, tzinfo=UTC)
    )
    assert moment is not None
    assert moment.astimezone(LONDON).replace(tzinfo=None) == datetime(2026, 3, 29, 2, 0)


def test_autumn_ambiguous_time_is_sent_once_in_the_day() -> None:
    london = chat("Europe/London", time(1, 30))
    start = datetime(2026, 10, 24, 12, tzinfo=UTC)
    moments = []
    moment: datetime | None = start
    while moment is not None and moment < datetime(2026, 10, 27, tzinfo=UTC):
        moment = next_digest_at(london, moment)
        assert moment is not None
        moments.append(moment.astimezone(LONDON).date())
    assert moments.count(datetime(2026, 10, 25).date()) == 1


def test_new_york_gap_at_0230_goes_to_0300_daylight_time() -> None:
    new_york = chat("America/New_York", time(2, 30))
    assert next_digest_at(new_york, datetime(2026, 3, 7, 12, tzinfo=UTC)) == datetime(
        2026, 3, 8, 7, 0, tzinfo=UTC
    )


def test_weekly_digest_comes_on_the_chosen_weekday() -> None:
    monday_nine = chat("Asia/Hong_Kong", time(9, 0), Frequency.weekly, weekday=0)
    wednesday = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    first = next_digest_at(monday_nine, wednesday)
    assert first == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # Mon 30 Nov 09:00 HKT
    assert next_digest_at(monday_nine, first) == first + timedelta(days=7)  # strictly after


def test_weekly_on_sunday_evening_west_of_utc() -> None:
    sunday_eight_pm = chat("America/Los_Angeles", time(20, 0), Frequency.weekly, weekday=6)
    sunday_nine_pm = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)  # Sun 29 Nov 21:00 PST
    assert next_digest_at(sunday_eight_pm, sunday_nine_pm - timedelta(hours=2)) == datetime(
        2026, 11, 30, 4, 0, tzinfo=UTC
    )
    moment = next_digest_at(sunday_eight_pm, sunday_nine_pm)
    assert moment == datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # Sun 6 Dec 20:00 PST
    assert moment.astimezone(ZoneInfo("America/Los_Angeles")).weekday() == 6


def test_instant_chats_have_no_digest_moment() -> None:
    assert (
        next_digest_at(chat("Asia/Hong_Kong", time(8), Frequency.instant), datetime.now(UTC))
        is None
    )


def test_after_three_days_of_downtime_the_next_digest_is_tomorrow_not_a_missed_one() -> None:
    hk = chat("Asia/Hong_Kong", time(8, 0))
    hk.next_digest_at = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    back_up = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # noon in Hong Kong
    reschedule(hk, back_up)
    assert hk.next_digest_at == datetime(2026, 11, 29, 0, 0, tzinfo=UTC)


def test_reschedule_follows_a_new_time_and_timezone() -> None:
    hk = chat("Asia/Hong_Kong", time(8, 0))
    now = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    reschedule(hk, now)
    assert hk.next_digest_at == datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
    hk.timezone, hk.digest_time = "Europe/London", time(18, 0)
    reschedule(hk, now)
    assert hk.next_digest_at == datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
    hk.frequency = Frequency.instant
    reschedule(hk, now)
    assert hk.next_digest_at is None


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc", "Asia", "America"])
def test_a_timezone_stored_wrong_falls_back_to_utc(zone: str) -> None:
    # "Asia" names a folder of the tz database: ZoneInfo raises IsADirectoryError for it
    after = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert next_digest_at(chat(zone, time(8, 0)), after) == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
