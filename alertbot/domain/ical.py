"""On-call shifts from an iCal export: Grafana OnCall, Opsgenie, PagerDuty and shared calendars
export a schedule as RFC 5545 events, one per shift (recurring or not), each naming its person.

An event's person is the first of its ATTENDEE addresses, its ATTENDEE common names and its SUMMARY
that is a Slack user ID or a name in ``ical.users`` (matched without case): OnCall writes the
user's name as the SUMMARY, calendars the attendee's e-mail. Where events overlap, the one that
started last covers the instant (as an override does); an instant no known person's event covers is
a gap, and nobody is on call then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import icalendar
import recurring_ical_events

from alertbot.domain.oncall import SLACK_USER_RE, Shift

LOOK_AHEAD = timedelta(days=35)  # how far to look for the end of a gap


class CalendarError(ValueError):
    """The calendar could not be read."""


def _instant(value: date | datetime) -> datetime:
    """An event's time as UTC; an all-day event's date as midnight UTC, a floating time as UTC."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Calendar:
    """A parsed calendar and the names it may use for people (``ical.users``: name → Slack ID)."""

    def __init__(self, ics: bytes, people: Mapping[str, str]) -> None:
        try:
            self._calendar = icalendar.Calendar.from_ical(ics)
        except ValueError as exc:
            raise CalendarError(f"not an iCalendar file: {exc}") from None
        if not isinstance(self._calendar, icalendar.Calendar):  # pragma: no cover - from_ical's contract
            raise CalendarError("not an iCalendar file")
        self._people = {name.lower(): user for name, user in people.items()}

    def unknown_names(self) -> list[str]:
        """The people the calendar's events name that map to no Slack user (to warn about)."""
        names: set[str] = set()
        for event in self._calendar.walk("VEVENT"):
            if not self.person(event):
                names.update(n for n in _names(event) if n)
        return sorted(names)

    def person(self, event: Any) -> str:
        for name in _names(event):
            if SLACK_USER_RE.match(name):
                return name
            user = self._people.get(name.lower())
            if user is not None:
                return user
        return ""

    def _events(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
        """(start, end, Slack user) of the events of known people overlapping [start, end)."""
        try:
            found = recurring_ical_events.of(self._calendar).between(start, end)
        except Exception as exc:  # the library's own errors for a malformed rule or time zone
            raise CalendarError(f"the calendar's events cannot be expanded: {exc}") from None
        out = []
        for event in found:
            user = self.person(event)
            begins = event.get("DTSTART")
            ends = event.get("DTEND")
            if not user or begins is None:
                continue
            first = _instant(begins.dt)
            last = _instant(ends.dt) if ends is not None else first + timedelta(days=1)
            out.append((first, last, user))
        return out

    def shift_at(self, at: datetime) -> Shift:
        """Who the calendar has on call at ``at`` (user ``""`` in a gap), from when until when."""
        covering = [e for e in self._events(at, at + timedelta(seconds=1)) if e[0] <= at < e[1]]
        if not covering:
            starts = [first for first, _, _ in self._events(at, at + LOOK_AHEAD) if first > at]
            return Shift("", at, min(starts, default=at + LOOK_AHEAD))
        first, last, user = max(covering, key=lambda e: e[0])
        # Someone else's event starting before this one ends takes over then.
        later = [s for s, _, u in self._events(at, last) if at < s < last and u != user]
        return Shift(user, first, min(later, default=last))


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
