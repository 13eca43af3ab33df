"""On-call shifts from an iCal export: Grafana OnCall, Opsgenie, PagerDuty and shared calendars
export a schedule as RFC 5545 events, one per shift (recurring or not), each naming its person.

An event's person is the first of its ATTENDEE addresses, its ATTENDEE common names and its SUMMARY
that is a Slack user ID or a name in ``ical.users`` (matched without case): OnCall writes the
user's name as the SUMMARY, calendars the attendee's e-mail. A cancelled event (``STATUS:CANCELLED``)
is no shift; an all-day or floating time is read in the schedule's time zone. Where events overlap,
the one that started last covers the instant (as an override does); an instant no known person's
event covers is a gap, and nobody is on call then.

Reading is two steps, both done off the event loop by their caller: ``Calendar`` parses the file,
``Calendar.expand`` lays its shifts out over a window once (recurrences expanded, each event checked
on its own: a malformed one is skipped and reported, not fatal). ``Shifts`` then answers who is on
call at any instant of the window without touching the calendar again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from alertbot.domain.oncall import SLACK_USER_RE, Shift


class CalendarError(ValueError):
    """The calendar could not be read."""


def _instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    """An event's time as an aware instant: a date (all-day) is midnight, a floating time is wall
    clock, both in the schedule's zone."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tz)
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


@dataclass(frozen=True)
class Shifts:
    """A calendar's shifts over ``[start, end)``, sorted by start; ``skipped``: why events were left out."""

    start: datetime
    end: datetime
    spans: list[tuple[datetime, datetime, str]]  # (start, end, Slack user), by start
    unknown: list[str] = field(default_factory=list)  # names that map to no Slack user
    skipped: list[str] = field(default_factory=list)

    def shift_at(self, at: datetime) -> Shift:
        """Who is on call at ``at`` (user ``""`` in a gap), from when until when. A stint resumed
        after a later-starting event ended starts when that one ended (so a hand-off back is seen)."""
        if not self.start <= at < self.end:
            return Shift("", at, max(at, self.end))  # outside what was read: nobody known
        begun = [s for s in self.spans if s[0] <= at]
        covering = [s for s in begun if s[1] > at]
        ended = [s[1] for s in begun if s[1] <= at]
        if not covering:
            upcoming = [s[0] for s in self.spans if s[0] > at]
            return Shift("", max(ended, default=self.start), min(upcoming, default=self.end))
        first, last, user = covering[-1]  # the one that started last
        resumed = max((e for e in ended if e > first), default=first)
        later = [s[0] for s in self.spans if at < s[0] < last and s[2] != user]
        return Shift(user, resumed, min(later, default=last))


class Calendar:
    """A parsed calendar and the names it may use for people (``ical.users``: name → Slack ID)."""

    def __init__(self, ics: bytes, people: Mapping[str, str]) -> None:
        try:
            parsed = icalendar.Calendar.from_ical(ics)
        except ValueError as exc:
            raise CalendarError(f"not an iCalendar file: {exc}") from None
        if not isinstance(parsed, icalendar.Calendar):  # pragma: no cover - from_ical's contract
            raise CalendarError("not an iCalendar file")
        # An event whose times cannot be read would stop the whole expansion: leave it out, and say so.
        self.skipped = [f"{e.get('UID', '?')}: {why}" for e in parsed.walk("VEVENT") if (why := _unreadable(e))]
        parsed.subcomponents = [c for c in parsed.subcomponents if c.name != "VEVENT" or not _unreadable(c)]
        self._calendar = parsed
        self._people = {name.lower(): user for name, user in people.items()}

    def person(self, event: Any) -> str:
        for name in _names(event):
            if SLACK_USER_RE.match(name):
                return name
            user = self._people.get(name.lower())
            if user is not None:
                return user
        return ""

    def expand(self, start: datetime, end: datetime, tz: ZoneInfo) -> Shifts:
        """Every shift overlapping ``[start, end)``; CalendarError when the calendar as a whole cannot be expanded."""
        try:
            found = recurring_ical_events.of(self._calendar).between(start, end)
        except Exception as exc:  # the library's own errors for a malformed rule or time zone
            raise CalendarError(f"the calendar's events cannot be expanded: {exc}") from None
        spans: list[tuple[datetime, datetime, str]] = []
        unknown: set[str] = set()
        skipped = list(self.skipped)
        for event in found:
            if str(event.get("STATUS", "")).upper() == "CANCELLED":
                continue
            user = self.person(event)
            if not user:
                unknown.update(n for n in _names(event) if n)
                continue
            try:
                first = _instant(event["DTSTART"].dt, tz)
                ends = event.get("DTEND")
                last = _instant(ends.dt, tz) if ends is not None else first + timedelta(days=1)
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                skipped.append(f"{event.get('UID', '?')}: {type(exc).__name__}")
                continue
            if last > first:
                spans.append((first, last, user))
        spans.sort()
        return Shifts(start, end, spans, sorted(unknown), skipped)


def _unreadable(event: Any) -> str:
    """Why the event's times cannot be read ("" when they can)."""
    try:
        for key in ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID"):
            if key in event:
                event[key].dt  # noqa: B018 - reading it is the check
        if "DTSTART" not in event:
            return "no DTSTART"
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        return f"{type(exc).__name__}: {str(exc)[:100]}"
    return ""


def _names(event: Any) -> Iterable[str]:
    attendees = event.get("ATTENDEE")
    if attendees is not None:
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            address = str(attendee)
            yield address.removeprefix("mailto:").removeprefix("MAILTO:")
            common_name = getattr(attendee, "params", {}).get("CN")
            if common_name:
                yield str(common_name)
    summary = event.get("SUMMARY")
    if summary is not None:
        yield str(summary).strip()
