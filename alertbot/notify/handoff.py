"""Hand-offs: when a schedule's on-call person changes (its rotation turns, an override begins or
ends), the incoming person gets a direct message and the schedule's ``handoff_channel`` a line, both
naming the incidents still open.

Every replica looks every ``oncall.handoff_check``. The store keeps the shift last seen per schedule,
and the one replica whose write changes it announces the hand-off (store/oncall.py ``handed_off``);
the shift running when alertbot first looks is recorded, not announced. An announcement is made at
most once: if Slack fails it, the failure is logged and the next hand-off is announced as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import structlog

from alertbot.domain.oncall import Schedule, Shift, wall_clock
from alertbot.domain.parse import format_duration
from alertbot.domain.text import escape_mrkdwn as e
from alertbot.errors import AlertbotError, NotifyError
from alertbot.notify.base import Notifier
from alertbot.notify.rota import Rota
from alertbot.notify.slack import SlackNotifier
from alertbot.notify.slack_blocks import who
from alertbot.settings_sections import OncallConfig
from alertbot.store import incidents, oncall
from alertbot.store.engine import Store
from alertbot.store.incidents import IncidentRecord

log = structlog.get_logger("alertbot.handoff")
SHOWN = 10  # open incidents named in a hand-off; the rest are counted


class HandoffWatch:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        oncall_config: Callable[[], OncallConfig],
        clock: Callable[[], datetime],
        rota: Rota,
    ) -> None:
        self._rota = rota
        self._store = store
        self._notifiers = notifiers
        self._oncall = oncall_config  # read at each look: a reload's schedules apply to the next one
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The first look before alertbot serves: the shift running now is recorded as nobody's
        hand-off before an override made right after start could be taken for it."""
        await self._look_once()
        self._task = asyncio.create_task(self._loop(), name="handoff-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._oncall().handoff_check.total_seconds())
            await self._look_once()

    async def _look_once(self) -> None:
        try:
            await self.look()
        except AlertbotError as exc:  # the store unavailable (the next look tries again), or Slack (lost)
            log.warning("handoff_check_failed", error=exc.message)
        except Exception:
            log.exception("handoff_check_crashed")

    async def look(self) -> int:
        """Announce each schedule whose on-call person changed since the last look; returns how many."""
        config = self._oncall()
        if not config.schedules:
            return 0
        now = self._clock()
        overrides = await self._rota.overrides(now)
        announced = 0
        for schedule in config.schedules:
            try:
                shift = await self._rota.on_call(schedule, now, overrides)
            except NotifyError as exc:  # its calendar cannot be read: the other schedules go on
                log.warning("handoff_check_failed", schedule=schedule.name, error=exc.message)
                continue
            before = await self._store.write(oncall.handed_off, schedule.name, _key(shift), now)
            outgoing = before.partition("@")[0] if before is not None else None
            # First look; the same person goes on; or a gap in a calendar begins (nobody to tell).
            if outgoing is None or outgoing == shift.user or not shift.user:
                continue
            still_open = await self._store.read(incidents.list_incidents, status="firing")
            await self._announce(schedule, shift, outgoing, [i for i in still_open if i.suppressed_by is None], now)
            announced += 1
        return announced

    async def _announce(
        self, schedule: Schedule, shift: Shift, outgoing: str, still_open: Sequence[IncidentRecord], now: datetime
    ) -> None:
        until = f"{wall_clock(shift.end, schedule.tz):%a %d %b %H:%M} {schedule.timezone}"
        what = f"*{e(schedule.name)}*{' (override)' if shift.override else ''} until {until}"
        incidents_text = _still_open(still_open, now)
        log.info("handoff", schedule=schedule.name, incoming=shift.user, outgoing=outgoing, open=len(still_open))
        slack = self._notifiers.get("slack")
        if not isinstance(slack, SlackNotifier):
            return  # the log line above is the hand-off
        await slack.direct_text(
            shift.user, f"You are now on call for {what}, taking over from <@{outgoing}>. {incidents_text}"
        )
        if schedule.handoff_channel is not None:
            await slack.post_text(
                schedule.handoff_channel,
                f"<@{shift.user}> is now on call for {what}, taking over from <@{outgoing}>. {incidents_text}",
            )


def _key(shift: Shift) -> str:
    return f"{shift.user}@{shift.start.isoformat()}"


def _still_open(still_open: Sequence[IncidentRecord], now: datetime) -> str:
    if not still_open:
        return "Nothing is open."
    items = [
        f"incident {i.id} *{e(i.alertname)}* {e(i.service)} ({i.severity.value}, firing for "
        f"{format_duration(now - i.starts_at)}{', acknowledged by ' + who(i.acked_by) if i.acked_by else ''})"
        for i in still_open[:SHOWN]
    ]
    more = f"; and {len(still_open) - SHOWN} more" if len(still_open) > SHOWN else ""
    return f"Still open: {len(still_open)} — {'; '.join(items)}{more}."
