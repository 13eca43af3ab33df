"""Who is on call, as escalation, hand-offs and ``/alertbot oncall`` ask it: the config's schedules,
the overrides in force (the config's and the stored ones), and the calendars of schedules imported
from iCal — read from their file or URL, kept, and read again every ``ical.refresh``. When a read
fails, the last good copy goes on serving (and the failure is logged, without the URL, which often
carries a token); a calendar never read is an error for whoever asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import structlog

from alertbot.domain.ical import Calendar, CalendarError
from alertbot.domain.oncall import IcalSource, Override, Schedule, Shift, next_on_call, on_call
from alertbot.errors import NotifyError
from alertbot.settings_sections import OncallConfig
from alertbot.store import oncall
from alertbot.store.engine import Store

log = structlog.get_logger("alertbot.rota")
MAX_CALENDAR = 5 * 1024 * 1024  # bytes: a year of shifts is a few hundred KB
FETCH_TIMEOUT = 10.0  # seconds


@dataclass(frozen=True)
class _Kept:
    source: IcalSource
    calendar: Calendar
    read_at: datetime


class Rota:
    def __init__(self, store: Store, config: Callable[[], OncallConfig], clock: Callable[[], datetime]) -> None:
        self._store = store
        self._config = config  # read at each question: a reload's schedules apply to the next one
        self._clock = clock
        self._kept: dict[str, _Kept] = {}  # by schedule name
        self._lock = asyncio.Lock()  # one read of a calendar at a time

    async def overrides(self, now: datetime) -> list[Override]:
        return await self._store.read(oncall.in_force, self._config().overrides, now)

    async def on_call(self, schedule: Schedule, at: datetime, overrides: list[Override] | None = None) -> Shift:
        """Who is on call for ``schedule`` at ``at`` (user ``""``: a gap in its calendar)."""
        if overrides is None:
            overrides = await self.overrides(at)
        return on_call(schedule, overrides, at, await self.calendar(schedule))

    async def now_and_next(self, schedule: Schedule, at: datetime, overrides: list[Override]) -> tuple[Shift, Shift]:
        calendar = await self.calendar(schedule)
        return on_call(schedule, overrides, at, calendar), next_on_call(schedule, overrides, at, calendar)

    async def calendar(self, schedule: Schedule) -> Calendar | None:
        """The schedule's calendar (None for a rotation), read again when ``refresh`` has passed."""
        source = schedule.ical
        if source is None:
            return None
        async with self._lock:
            now = self._clock()
            kept = self._kept.get(schedule.name)
            if kept is not None and kept.source == source and now - kept.read_at < source.refresh:
                return kept.calendar
            try:
                calendar = Calendar(await _read(source), source.users)
            except (CalendarError, OSError, aiohttp.ClientError, TimeoutError) as exc:
                why = _why(exc)
                if kept is not None and kept.source == source:
                    log.warning("calendar_unreadable_kept", schedule=schedule.name, error=why)
                    self._kept[schedule.name] = _Kept(source, kept.calendar, now)  # not again at once
                    return kept.calendar
                log.warning("calendar_unreadable", schedule=schedule.name, error=why)
                raise NotifyError(
                    f"the calendar of schedule {schedule.name!r} cannot be read: {why}", retryable=True
                ) from None
            unknown = calendar.unknown_names()
            if unknown:
                log.warning("calendar_names_unknown", schedule=schedule.name, names=unknown[:20])
            self._kept[schedule.name] = _Kept(source, calendar, now)
            return calendar


async def _read(source: IcalSource) -> bytes:
    if source.file is not None:
        data = await asyncio.to_thread(source.file.read_bytes)
    else:
        assert source.url is not None
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(source.url) as resp:
            if resp.status != 200:
                raise CalendarError(f"HTTP {resp.status}")
            data = await resp.content.read(MAX_CALENDAR + 1)
    if len(data) > MAX_CALENDAR:
        raise CalendarError(f"larger than {MAX_CALENDAR // (1024 * 1024)} MiB")
    return data


def _why(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        return f"unreachable ({type(exc).__name__})"  # aiohttp's messages name the URL
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)
