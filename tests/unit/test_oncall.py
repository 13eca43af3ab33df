"""Schedules (rotation, daylight saving, overrides) and escalation plans, from tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from alertbot.domain.oncall import EscalationPolicy, Override, QuietHours, Schedule, next_on_call, on_call, plan

PRIMARY = Schedule.model_validate(
    {
        "name": "primary",
        "users": ["U0AAA", "U0BBB"],
        "shift": "1w",
        "handoff": "2026-11-30T09:00:00",
        "timezone": "Europe/Berlin",
    }
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "user"),
    [
        ("2026-11-30T07:59:59", "U0BBB"),  # 08:59 CET, before the first hand-off
        ("2026-11-30T08:00:00", "U0AAA"),  # 09:00 CET
        ("2026-12-07T08:00:00", "U0BBB"),
        # Clocks go forward on 2027-03-28: Monday 29 March 09:00 in Berlin is 07:00 UTC, not 08:00.
        ("2027-03-29T06:59:59", "U0AAA"),
        ("2027-03-29T07:00:00", "U0BBB"),
        # And back on 2027-10-31: Monday 1 November 09:00 CET is 08:00 UTC again.
        ("2027-11-01T07:59:59", "U0BBB"),
        ("2027-11-01T08:00:00", "U0AAA"),
    ],
)
def test_weekly_rotation_hands_off_at_the_local_wall_clock_time(at: str, user: str) -> None:
    assert on_call(PRIMARY, [], utc(at)).user == user


def test_a_shift_spanning_a_clock_change_is_an_hour_shorter_or_longer() -> None:
    spring = on_call(PRIMARY, [], utc("2027-03-25T12:00:00"))
    assert (spring.start, spring.end) == (utc("2027-03-22T08:00:00"), utc("2027-03-29T07:00:00"))
    assert spring.end - spring.start == timedelta(days=7, hours=-1)


def test_the_newest_override_covering_an_instant_wins_and_cuts_the_rotation_short() -> None:
    overrides = [
        Override(schedule="primary", user="U0CCC", start=utc("2026-12-01T13:00:00"), end=utc("2026-12-01T17:00:00")),
        Override(schedule="primary", user="U0DDD", start=utc("2026-12-01T15:00:00"), end=utc("2026-12-01T16:00:00")),
        Override(schedule="other", user="U0EEE", start=utc("2026-12-01T00:00:00"), end=utc("2026-12-02T00:00:00")),
    ]
    assert on_call(PRIMARY, overrides, utc("2026-12-01T14:00:00")).user == "U0CCC"
    assert on_call(PRIMARY, overrides, utc("2026-12-01T15:30:00")).user == "U0DDD"
    before = on_call(PRIMARY, overrides, utc("2026-12-01T12:00:00"))
    assert (before.user, before.end) == ("U0AAA", utc("2026-12-01T13:00:00"))
    assert next_on_call(PRIMARY, overrides, utc("2026-12-01T12:00:00")).user == "U0CCC"
    assert next_on_call(PRIMARY, [], utc("2026-12-01T12:00:00")).start == utc("2026-12-07T08:00:00")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"users": ["alice"]}, "is not a Slack user ID"),
        ({"users": []}, "a rotation needs users"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"handoff": "2026-11-30T09:00:00+01:00"}, "without an offset"),
        ({"shift": "30m"}, "at least 1h"),
    ],
)
def test_a_bad_schedule_says_what_is_wrong(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate({**PRIMARY.model_dump(), **change})


def test_a_policy_is_laid_out_in_time_and_repeated() -> None:
    policy = EscalationPolicy.model_validate(
        {
            "name": "critical",
            "steps": [{"notify": "schedule:primary"}, {"notify": "user:U0CCC", "after": "5m"}],
            "repeat": 1,
        }
    )
    start = utc("2026-12-01T10:00:00")
    steps = [(s.number, s.of, s.target, s.due - start) for s in plan(policy, start)]
    assert steps == [
        (1, 4, "schedule:primary", timedelta(0)),
        (2, 4, "user:U0CCC", timedelta(minutes=5)),
        (3, 4, "schedule:primary", timedelta(minutes=5)),
        (4, 4, "user:U0CCC", timedelta(minutes=10)),
    ]
    with pytest.raises(ValidationError, match="notify one of"):
        EscalationPolicy.model_validate({"name": "x", "steps": [{"notify": "email:bob@example.com"}]})
    with pytest.raises(ValidationError, match="at least 1s"):
        EscalationPolicy.model_validate({"name": "x", "steps": [{"notify": "pagerduty"}], "renotify": "0s"})
    with pytest.raises(ValidationError, match="at least 1s"):
        EscalationPolicy.model_validate({"name": "x", "steps": [{"notify": "pagerduty"}], "ack_timeout": "0s"})


NIGHTS_AND_WEEKENDS = QuietHours.model_validate(
    {"start": "19:00", "end": "08:00", "timezone": "Europe/Berlin", "days": ["sat", "sun"]}
)


@pytest.mark.parametrize(
    ("at", "until"),
    [
        ("2026-12-02T12:00:00", None),  # Wednesday 13:00 CET: working hours
        ("2026-12-02T17:59:59", None),  # 18:59 CET
        ("2026-12-02T18:00:00", "2026-12-03T07:00:00"),  # 19:00 CET → Thursday 08:00 CET
        ("2026-12-03T02:00:00", "2026-12-03T07:00:00"),  # 03:00 CET, the same night
        ("2026-12-03T07:00:00", None),  # 08:00 CET: the quiet is over
        ("2026-12-04T20:00:00", "2026-12-07T07:00:00"),  # Friday night → through the weekend to Monday 08:00
        ("2026-12-06T11:00:00", "2026-12-07T07:00:00"),  # Sunday noon
        # Clocks go forward on 2027-03-28: Monday 29 March 08:00 in Berlin is 06:00 UTC.
        ("2027-03-27T12:00:00", "2027-03-29T06:00:00"),
    ],
)
def test_quiet_hours_end_at_the_next_local_working_time(at: str, until: str | None) -> None:
    expected = utc(until) if until is not None else None
    assert NIGHTS_AND_WEEKENDS.until(utc(at)) == expected


def test_quiet_hours_ending_in_the_repeated_hour_end_after_now() -> None:
    """Clocks go back on 2026-10-25 (03:00 CEST → 02:00 CET): quiet 01:00 to 02:30 seen at 01:10 UTC,
    the second 02:10 local, ends at the second 02:30 (01:30 UTC), not the first (00:30 UTC)."""
    night = QuietHours.model_validate({"start": "01:00", "end": "02:30", "timezone": "Europe/Berlin"})
    assert night.until(utc("2026-10-25T01:10:00")) == utc("2026-10-25T01:30:00")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"start": 1140, "end": "08:00"}, 'quote the time, e.g. "19:00"'),
        ({"start": "19:00"}, "give both start and end"),
        ({"start": "08:00", "end": "08:00"}, "start and end are the same"),
        ({}, "give start and end, or days"),
        ({"days": ["someday"]}, "mon, tue"),
        ({"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}, "never ends"),
    ],
)
def test_bad_quiet_hours_say_what_is_wrong(value: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        QuietHours.model_validate(value)
