"""Schedules imported from iCal (domain/ical.py): who a calendar has on call, across a clock change,
with a cover event layered on a shift, and in a gap; the names it may use for people."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from alertbot.domain.ical import Calendar, CalendarError, Shifts
from alertbot.domain.oncall import Override, Schedule, next_on_call, on_call
from tests.helpers import DATA

ICS = (DATA / "ical" / "primary.ics").read_bytes()
PEOPLE = {"alice": "U0AAA", "bob@example.com": "U0BBB"}
SCHEDULE = Schedule.model_validate({"name": "primary", "ical": {"file": "primary.ics", "users": PEOPLE}})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


BERLIN = ZoneInfo("Europe/Berlin")


def laid_out(ics: bytes = ICS, people: dict[str, str] = PEOPLE) -> Shifts:
    return Calendar(ics, people).expand(utc("2026-11-01T00:00:00"), utc("2027-12-01T00:00:00"), BERLIN)


@pytest.mark.parametrize(
    ("at", "user"),
    [
        ("2026-11-30T07:59:59", ""),  # before the first shift: a gap
        ("2026-11-30T08:00:00", "U0AAA"),  # 09:00 CET: alice, named by SUMMARY
        ("2026-12-07T08:00:00", "U0BBB"),  # bob, named by his ATTENDEE address
        ("2026-12-02T14:00:00", "U0CCC"),  # a cover event, a Slack ID itself, layered on alice's shift
        # Clocks go forward on 2027-03-28: the shift still changes at 09:00 Berlin, 07:00 UTC.
        ("2027-03-29T06:59:59", "U0AAA"),
        ("2027-03-29T07:00:00", "U0BBB"),
    ],
)
def test_the_calendar_says_who_is_on_call(at: str, user: str) -> None:
    assert on_call(SCHEDULE, [], utc(at), laid_out()).user == user


def test_a_cover_event_cuts_the_shift_short_and_the_next_person_is_found() -> None:
    calendar = laid_out()
    shift = on_call(SCHEDULE, [], utc("2026-12-02T12:00:00"), calendar)
    assert (shift.user, shift.end) == ("U0AAA", utc("2026-12-02T13:00:00"))
    assert next_on_call(SCHEDULE, [], utc("2026-12-02T12:00:00"), calendar).user == "U0CCC"
    override = Override(
        schedule="primary", user="U0DDD", start=utc("2026-12-02T10:00:00"), end=utc("2026-12-02T11:00:00")
    )
    assert on_call(SCHEDULE, [override], utc("2026-12-02T10:30:00"), calendar).user == "U0DDD"  # overrides win
    back = on_call(SCHEDULE, [], utc("2026-12-02T17:30:00"), calendar)  # after the cover: alice's stint resumed
    assert (back.user, back.start) == ("U0AAA", utc("2026-12-02T17:00:00"))


def test_a_gap_ends_when_the_next_shift_starts_and_unknown_names_are_reported() -> None:
    calendar = laid_out()
    gap = on_call(SCHEDULE, [], utc("2026-11-29T12:00:00"), calendar)
    assert (gap.user, gap.start, gap.end) == ("", utc("2026-11-01T00:00:00"), utc("2026-11-30T08:00:00"))
    assert calendar.unknown == ["Christmas (nobody)"]
    assert laid_out(people={}).unknown == [
        "Bob Example",
        "Christmas (nobody)",
        "On call: Bob",
        "alice",
        "bob@example.com",
    ]
    assert on_call(SCHEDULE, [], utc("2026-12-07T08:00:00"), laid_out(people={})).user == ""  # bob unknown: a gap


def test_cancelled_all_day_and_malformed_events() -> None:
    """A cancelled shift is none; an all-day one runs midnight to midnight in the schedule's zone; a
    malformed one is skipped and reported, and the rest of the calendar still serves."""
    ics = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//alertbot tests//EN
BEGIN:VEVENT
UID:cancelled
DTSTART:20261203T000000Z
DTEND:20261204T000000Z
STATUS:CANCELLED
SUMMARY:U0CCC
END:VEVENT
BEGIN:VEVENT
UID:all-day
DTSTART;VALUE=DATE:20261205
DTEND;VALUE=DATE:20261206
SUMMARY:U0DDD
END:VEVENT
BEGIN:VEVENT
UID:broken
DTSTART:20261207T000000Z
DTEND:not-a-time
SUMMARY:U0EEE
END:VEVENT
END:VCALENDAR
"""
    calendar = laid_out(ics)
    assert on_call(SCHEDULE, [], utc("2026-12-03T12:00:00"), calendar).user == ""
    day = on_call(SCHEDULE, [], utc("2026-12-05T12:00:00"), calendar)
    assert (day.user, day.start, day.end) == ("U0DDD", utc("2026-12-04T23:00:00"), utc("2026-12-05T23:00:00"))
    assert [why.split(":")[0] for why in calendar.skipped] == ["broken"]


def test_what_is_not_a_calendar_is_refused() -> None:
    with pytest.raises(CalendarError, match="not an iCalendar file"):
        Calendar(b"<html>login</html>", {})


@pytest.mark.parametrize(
    ("ical", "message"),
    [
        ({"users": PEOPLE}, "give one of url and file"),
        ({"url": "ftp://x/y.ics"}, "http:// or https://"),
        ({"file": "a.ics", "url": "https://x/y.ics"}, "give one of url and file"),
        ({"file": "a.ics", "users": {"alice": "alice"}}, "is not a Slack user ID"),
        ({"file": "a.ics", "refresh": "0s"}, "at least 1s"),
    ],
)
def test_a_bad_ical_source_says_what_is_wrong(ical: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate({"name": "primary", "ical": ical})


def test_a_schedule_is_a_rotation_or_a_calendar() -> None:
    with pytest.raises(ValidationError, match="drop users or ical"):
        Schedule.model_validate({"name": "p", "users": ["U0AAA"], "ical": {"file": "a.ics"}})
