"""Who is on call, as escalation, hand-offs and ``/alertbot oncall`` ask it: the config's schedules,
the overrides in force (the config's and the stored ones), and the calendars of schedules imported
from iCal.

A calendar is read from its file or URL and laid out over a window (a day back, ``WINDOW`` ahead) in
a worker thread, never on the event loop, and kept; it is read again once ``ical.refresh`` has
passed. When a read fails — unreachable, not a calendar, nothing in it expandable — the last good
copy goes on serving and the failure is logged (without the URL, which often carries a token); a
calendar never read yet is an error for whoever asks. Each schedule's reads are serialised on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import structlog

from alertbot.domain.ical import Calendar, CalendarError, Shifts
from alertbot.domain.oncall import IcalSource, Override, Schedule, Shift, next_on_call, on_call
from alertbot.errors import NotifyError
from alertbot.settings_sections import OncallConfig
from alertbot.store import oncall
from alertbot.store.engine import Store

log = structlog.get_logger("alertbot.rota")
MAX_CALENDAR = 5 * 1024 * 1024  # bytes: a year of shifts is a few hundred KB
FETCH_TIMEOUT = 10.0  # seconds
WINDOW = timedelta(days=35)  # how far ahead a read lays shifts out (who is next, when a gap ends)


@dataclass(frozen=True)
class _Kept:
    source: IcalSource
    shifts: Shifts
    read_at: datetime


class Rota:
    def __init__(self, store: Store, config: Callable[[], OncallConfig], clock: Callable[[], datetime]) -> None:
        self._store = store
        self._config = config  # read at each question: a reload's schedules apply to the next one
        self._clock = clock
        self._kept: dict[str, _Kept] = {}  # by schedule name
        self._locks: dict[str, asyncio.Lock] = {}  # one read of a schedule's calendar at a time

    async def overrides(self, now: datetime) -> list[Override]:
        return await self._store.read(oncall.in_force, self._config().overrides, now)

    async def on_call(self, schedule: Schedule, at: datetime, overrides: list[Override] | None = None) -> Shift:
        """Who is on call for ``schedule`` at ``at`` (user ``""``: a gap in its calendar)."""
        if overrides is None:
            overrides = await self.overrides(at)
        return on_call(schedule, overrides, at, await self.shifts(schedule))

    async def now_and_next(self, schedule: Schedule, at: datetime, overrides: list[Override]) -> tuple[Shift, Shift]:
        shifts = await self.shifts(schedule)
        return on_call(schedule, overrides, at, shifts), next_on_call(schedule, overrides, at, shifts)

    async def shifts(self, schedule: Schedule) -> Shifts | None:
        """The schedule's calendar laid out (None for a rotation), read again once ``refresh`` has passed."""
        source = schedule.ical
        if source is None:
            return None
        async with self._locks.setdefault(schedule.name, asyncio.Lock()):
            now = self._clock()
            kept = self._kept.get(schedule.name)
            if kept is not None and kept.source == source and now - kept.read_at < source.refresh:
                return kept.shifts
            try:
                data = await _read(source)
                shifts = await asyncio.to_thread(_lay_out, data, source, schedule, now)
            except (CalendarError, OSError, aiohttp.ClientError, TimeoutError) as exc:
                why = _why(exc)
                if kept is not None and kept.source == source:
                    log.warning("calendar_unreadable_kept", schedule=schedule.name, error=why)
                    self._kept[schedule.name] = _Kept(source, kept.shifts, now)  # not again at once
                    return kept.shifts
                log.warning("calendar_unreadable", schedule=schedule.name, error=why)
                raise NotifyError(
                    f"the calendar of schedule {schedule.name!r} cannot be read: {why}", retryable=True
                ) from None
            if shifts.unknown:
                log.warning("calendar_names_unknown", schedule=schedule.name, names=shifts.unknown[:20])
            if shifts.skipped:
                log.warning("calendar_events_skipped", schedule=schedule.name, events=shifts.skipped[:20])
            self._kept[schedule.name] = _Kept(source, shifts, now)
            return shifts


def _lay_out(data: bytes, source: IcalSource, schedule: Schedule, now: datetime) -> Shifts:
    """In a worker thread: parse and expand (a large calendar takes seconds)."""
    return Calendar(data, source.users).expand(now - timedelta(days=1), now + WINDOW, schedule.tz)


async def _read(source: IcalSource) -> bytes:
    if source.file is not None:
        data = await asyncio.to_thread(source.file.read_bytes)
        if len(data) > MAX_CALENDAR:
            raise CalendarError(f"larger than {MAX_CALENDAR // (1024 * 1024)} MiB")
        return data
    assert source.url is not None
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(source.url) as resp:
        if resp.status != 200:
            raise CalendarError(f"HTTP {resp.status}")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(65536):  # to the end, however it arrives
            body += chunk
            if len(body) > MAX_CALENDAR:
                raise CalendarError(f"larger than {MAX_CALENDAR // (1024 * 1024)} MiB")
        return bytes(body)


def _why(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        return f"unreachable ({type(exc).__name__})"  # aiohttp's messages name the URL
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)
