"""On-call: who is on call when, and escalation policies — who is told, in what order, how far apart.

A schedule is a rotation of Slack users: each shift lasts ``shift`` and hands off at the wall-clock
time of ``handoff`` in ``timezone``, so a weekly rotation handing off Monday 09:00 in Berlin does so
at 09:00 in summer and in winter (shifts are counted on the local clock, not in elapsed hours).
Overrides lie on top ("Alice covers Bob from 14:00 to 18:00"): the newest one covering an instant wins.

An escalation policy is an ordered list of steps, each waiting ``after`` since the previous one,
and the whole list may be repeated. ``plan`` lays a policy out in time from the moment an incident
pages; ingest writes each step as an outbox row due then (alertbot/oncall/escalation.py sends it),
so escalation survives restarts and each step is sent by one replica.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from alertbot.domain.parse import Duration, format_duration

MAX_STEPS = 20
MAX_REPEAT = 10
MAX_USERS = 100
SLACK_USER_RE = re.compile(r"^[UW][A-Z0-9]{2,20}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _slack_user(value: str) -> str:
    if not SLACK_USER_RE.match(value):
        raise ValueError(f"{value!r} is not a Slack user ID (such as U0123ABCD: Slack → profile → Copy member ID)")
    return value


def _name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(f"{value!r}: a name is letters, digits, '_', '.' or '-' (at most 63)")
    return value


def _slack_channel(value: str) -> str:
    if not CHANNEL_RE.match(value):
        raise ValueError(f"{value!r} is not a Slack channel: #name or a channel ID such as C0123ABCD")
    return value


CHANNEL_RE = re.compile(r"^(#[a-z0-9_-]{1,80}|[CG][A-Z0-9]{2,20})$")
SlackUser = Annotated[str, AfterValidator(_slack_user)]
SlackChannel = Annotated[str, AfterValidator(_slack_channel)]
Name = Annotated[str, AfterValidator(_name)]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)") from None


def _zone_name(value: str) -> str:
    zone(value)
    return value


TimeZone = Annotated[str, AfterValidator(_zone_name)]  # an IANA name


def wall_clock(at: datetime, tz: ZoneInfo) -> datetime:
    """``at`` as the naive local time a clock on the wall in ``tz`` shows."""
    return at.astimezone(tz).replace(tzinfo=None)


def instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time. A time the clock skips (spring forward) is read
    with the offset before the change, an hour that repeats (fall back) as its first occurrence."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class Shift:
    user: str
    start: datetime  # UTC
    end: datetime  # UTC
    override: bool = False  # an override, not the rotation


class IcalSource(BaseModel):
    """``oncall.schedules[].ical``: a schedule's shifts from an iCal export (domain/ical.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None  # http(s); an export URL often carries a token: it is never logged
    file: Path | None = None
    refresh: Duration = timedelta(minutes=5)  # read again this often; the last good copy serves meanwhile
    users: dict[str, SlackUser] = Field(default_factory=dict)  # the calendar's names → Slack user IDs

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// address (for a file on disk, use file:)")
        return value

    @field_validator("refresh")
    @classmethod
    def _sensible_refresh(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("at least 1s")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> IcalSource:
        if (self.url is None) == (self.file is None):
            raise ValueError("give one of url and file")
        return self


class Schedule(BaseModel):
    """``oncall.schedules[]``: a rotation of Slack users (``users``, ``shift``, ``handoff``), or the
    shifts of an iCal export (``ical``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    users: list[SlackUser] = Field(default_factory=list, max_length=MAX_USERS)
    shift: Duration | None = None
    handoff: datetime | None = None  # one hand-off instant, wall-clock in ``timezone``
    timezone: TimeZone = "UTC"
    handoff_channel: SlackChannel | None = None  # told of each hand-off (the incoming person always is)
    ical: IcalSource | None = None

    @field_validator("shift")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(hours=1):
            raise ValueError("a shift is at least 1h")
        return value

    @field_validator("handoff")
    @classmethod
    def _wall_clock(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("write the hand-off as a wall-clock time without an offset; `timezone` says where")
        return value

    @model_validator(mode="after")
    def _rotation_or_calendar(self) -> Schedule:
        rotation = [k for k in ("users", "shift", "handoff") if getattr(self, k)]
        if self.ical is not None and rotation:
            raise ValueError(f"a schedule is a rotation or an iCal calendar: drop {', '.join(rotation)} or ical")
        if self.ical is None and len(rotation) < 3:
            raise ValueError("a rotation needs users (at least one), shift and handoff — or give ical")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def rotation_at(self, at: datetime) -> Shift:
        """The rotation's shift covering ``at``."""
        assert self.shift is not None and self.handoff is not None, "a calendar schedule has no rotation"
        tz = self.tz
        index = math.floor((wall_clock(at, tz) - self.handoff) / self.shift)
        # Counted on the wall clock; across a clock change the instant may fall in a neighbour.
        for _ in range(8):
            start = instant(self.handoff + index * self.shift, tz)
            end = instant(self.handoff + (index + 1) * self.shift, tz)
            if at < start:
                index -= 1
            elif at >= end:
                index += 1
            else:
                break
        return Shift(self.users[index % len(self.users)], start, end)


class Override(BaseModel):
    """A person covering a schedule between two instants (``oncall.overrides[]`` or
    ``/alertbot oncall override``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: Name
    user: SlackUser
    start: datetime
    end: datetime
    created_by: str = "config"

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give the time with its offset, e.g. 2026-12-01T14:00:00+01:00")
        return value.astimezone(UTC)


class ShiftSource(Protocol):
    """A calendar schedule's shifts (domain/ical.py ``Calendar``)."""

    def shift_at(self, at: datetime) -> Shift: ...


def on_call(
    schedule: Schedule, overrides: Sequence[Override], at: datetime, calendar: ShiftSource | None = None
) -> Shift:
    """Who is on call for ``schedule`` at ``at``: the newest override covering it, else the rotation
    (or, for a schedule of ``ical``, its ``calendar``; user ``""`` in a gap of it)."""
    mine = [o for o in overrides if o.schedule == schedule.name]
    covering = [(i, o) for i, o in enumerate(mine) if o.start <= at < o.end]
    if covering:
        index, last = covering[-1]
        # A newer override starting inside this one takes over then.
        newer = [o.start for o in mine[index + 1 :] if at < o.start < last.end]
        return Shift(last.user, last.start, min(newer, default=last.end), override=True)
    if schedule.ical is None:
        shift = schedule.rotation_at(at)
    elif calendar is not None:
        shift = calendar.shift_at(at)
    else:
        raise LookupError(f"the calendar of schedule {schedule.name!r} has not been read")
    # An override starting before the rotation's shift ends cuts it short; one that ended during it
    # began the stint now running (so the hand-off back is a hand-off too).
    starts = [o.start for o in mine if at < o.start < shift.end]
    resumed = max((o.end for o in mine if shift.start < o.end <= at), default=shift.start)
    return Shift(shift.user, resumed, min(starts, default=shift.end))


def next_on_call(
    schedule: Schedule, overrides: Sequence[Override], at: datetime, calendar: ShiftSource | None = None
) -> Shift:
    """Who takes over when the current shift (or override) ends; the next different person, when
    the same one continues."""
    current = on_call(schedule, overrides, at, calendar)
    nxt = on_call(schedule, overrides, current.end, calendar)
    for _ in range(max(len(schedule.users), 20) + len(overrides)):
        if nxt.user != current.user:
            break
        nxt = on_call(schedule, overrides, nxt.end, calendar)
    return nxt


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class QuietHours(BaseModel):
    """``routes[].quiet_hours``: when info and warning pages wait (a critical never does). Quiet
    each day from ``start`` to ``end`` (wall clock in ``timezone``; ``end`` before ``start`` spans
    the night) and all day on ``days`` (e.g. ``[sat, sun]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time | None = None
    end: time | None = None
    timezone: TimeZone = "UTC"
    days: list[str] = Field(default_factory=list)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        if value is not None and not isinstance(value, str | time):
            # YAML reads an unquoted 19:00 as the number 1140 (base 60).
            raise ValueError('quote the time, e.g. "19:00"')
        return value

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[str]) -> list[str]:
        days = [d.lower() for d in value]
        unknown = [d for d in days if d not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown day {unknown[0]!r}: use {', '.join(WEEKDAYS)}")
        if len(set(days)) == len(WEEKDAYS):
            raise ValueError("quiet all week never ends: leave a day out")
        return days

    @model_validator(mode="after")
    def _some_quiet(self) -> QuietHours:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end (or neither, with days)")
        if self.start is None and not self.days:
            raise ValueError("give start and end, or days, or both")
        if self.start is not None and self.start == self.end:
            raise ValueError("start and end are the same: for a quiet day, list it in days")
        return self

    def _quiet(self, local: datetime) -> bool:
        if WEEKDAYS[local.weekday()] in self.days:
            return True
        if self.start is None or self.end is None:
            return False
        now = local.time()
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end  # across midnight

    def _next_boundary(self, local: datetime) -> datetime:
        """The next local instant after ``local`` at which the quiet might end: the daily ``end``,
        or midnight (a quiet day ends)."""
        midnight = datetime.combine(local.date() + timedelta(days=1), time())
        if self.end is None:
            return midnight
        end = datetime.combine(local.date(), self.end)
        return min(end if end > local else end + timedelta(days=1), midnight)

    def until(self, at: datetime) -> datetime | None:
        """When the quiet covering ``at`` ends (UTC), or None if ``at`` is not quiet."""
        tz = zone(self.timezone)
        local = wall_clock(at, tz)
        if not self._quiet(local):
            return None
        for _ in range(16):  # at most a night and six quiet days
            local = self._next_boundary(local)
            if not self._quiet(local):
                ends = instant(local, tz)
                # In the hour the clocks repeat, the wall-clock time's second occurrence is the one ahead.
                return ends if ends > at else local.replace(tzinfo=tz, fold=1).astimezone(UTC)
        raise AssertionError("quiet hours that never end passed validation")  # pragma: no cover

    def describe(self) -> str:
        """ "19:00 to 08:00 and all sat, sun Europe/Berlin" """
        parts = [f"{self.start:%H:%M} to {self.end:%H:%M}"] if self.start and self.end else []
        parts += [f"all {', '.join(self.days)}"] if self.days else []
        return f"{' and '.join(parts)} {self.timezone}"

    def local(self, at: datetime) -> str:
        """``at`` on the quiet hours' clock: "Mon 07 Dec 08:00 Europe/Berlin"."""
        return f"{wall_clock(at, zone(self.timezone)):%a %d %b %H:%M} {self.timezone}"


TARGET_RE = re.compile(
    r"^(schedule:[A-Za-z0-9][A-Za-z0-9_.-]{0,62}|user:[UW][A-Z0-9]{2,20}|channel:#?[a-z0-9_-]{1,80}|pagerduty)$"
)


def _target(value: str) -> str:
    if not TARGET_RE.match(value):
        raise ValueError(f"{value!r}: notify one of schedule:NAME, user:SLACK_USER_ID, channel:#name or pagerduty")
    return value


Target = Annotated[str, AfterValidator(_target)]


class Step(BaseModel):
    """``notify`` a target once ``after`` has passed since the previous step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notify: Target
    after: Duration = timedelta(0)

    @field_validator("after")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("after may not be negative")
        return value


class EscalationPolicy(BaseModel):
    """``oncall.escalations[]``: steps in order; ``repeat`` runs the list that many more times.
    ``ack_timeout``: an acknowledgement lapses after this long if the incident still fires, and the
    policy runs again. ``renotify``: while nobody has acknowledged the page, it is re-posted to its
    channels this often."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    repeat: int = Field(0, ge=0, le=MAX_REPEAT)
    ack_timeout: Duration | None = None
    renotify: Duration | None = None

    @field_validator("ack_timeout", "renotify")
    @classmethod
    def _at_least_a_second(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(seconds=1):
            raise ValueError("at least 1s")
        return value


@dataclass(frozen=True)
class PlannedStep:
    number: int  # 1-based, across repeats
    of: int
    target: str
    due: datetime

    def describe(self) -> str:
        return f"escalation step {self.number} of {self.of}: {self.target}"


def plan(policy: EscalationPolicy, start: datetime) -> list[PlannedStep]:
    """Every step of ``policy`` laid out in time from ``start`` (when the incident paged). A repeat
    begins its first step's ``after`` after the last step of the round before."""
    rounds = [step for _ in range(policy.repeat + 1) for step in policy.steps]
    out: list[PlannedStep] = []
    due = start
    for number, step in enumerate(rounds, start=1):
        due += step.after
        out.append(PlannedStep(number, len(rounds), step.notify, due))
    return out


def describe_plan(steps: Sequence[PlannedStep], start: datetime) -> str:
    """ "schedule:primary now, user:U0CCC after 5m, pagerduty after 15m" — for shadow decisions."""
    return ", ".join(
        f"{s.target} {'now' if s.due <= start else 'after ' + format_duration(s.due - start)}" for s in steps
    )
