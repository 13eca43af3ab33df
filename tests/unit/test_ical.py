"""Schedules imported from iCal (domain/ical.py): who a calendar has on call, across a clock change,
with a cover event layered on a shift, and in a gap; the names it may use for people."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from alertbot.domain.ical import Calendar, CalendarError
from alertbot.domain.oncall import Override, Schedule, next_on_call, on_call
from tests.helpers import DATA

ICS = (DATA / "ical" / "primary.ics").read_bytes()
PEOPLE = {"alice": "U0AAA", "bob@example.com": "U0BBB"}
SCHEDULE = Schedule.model_validate({"name": "primary", "ical": {"file": "primary.ics", "users": PEOPLE}})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


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
    calendar = Calendar(ICS, PEOPLE)
    assert on_call(SCHEDULE, [], utc(at), calendar).user == user


def test_a_cover_event_cuts_the_shift_short_and_the_next_person_is_found() -> None:
    calendar = Calendar(ICS, PEOPLE)
    shift = on_call(SCHEDULE, [], utc("2026-12-02T12:00:00"), calendar)
    assert (shift.user, shift.end) == ("U0AAA", utc("2026-12-02T13:00:00"))
    assert next_on_call(SCHEDULE, [], utc("2026-12-02T12:00:00"), calendar).user == "U0CCC"
    override = Override(
        schedule="primary", user="U0DDD", start=utc("2026-12-02T10:00:00"), end=utc("2026-12-02T11:00:00")
    )
    assert on_call(SCHEDULE, [override], utc("2026-12-02T10:30:00"), calendar).user == "U0DDD"  # overrides win


def test_a_gap_ends_when_the_next_shift_starts_and_unknown_names_are_reported() -> None:
    calendar = Calendar(ICS, PEOPLE)
    gap = on_call(SCHEDULE, [], utc("2026-11-29T12:00:00"), calendar)
    assert (gap.user, gap.end) == ("", utc("2026-11-30T08:00:00"))
    assert calendar.unknown_names() == ["Christmas (nobody)"]
    assert Calendar(ICS, {}).unknown_names() == [
        "Bob Example",
        "Christmas (nobody)",
        "On call: Bob",
        "alice",
        "bob@example.com",
    ]
    assert on_call(SCHEDULE, [], utc("2026-12-07T08:00:00"), Calendar(ICS, {})).user == ""  # bob unknown: a gap


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
