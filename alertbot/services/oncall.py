"""Who is on call (``/alertbot oncall``), and overrides made in Slack, for whoever's role allows it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from alertbot.domain.oncall import Override, Schedule, Shift
from alertbot.domain.parse import format_duration, parse_duration
from alertbot.errors import NotFound, PayloadError
from alertbot.notify.rota import Rota
from alertbot.services.roles import Action, Actor, Roles
from alertbot.settings_sections import OncallConfig
from alertbot.store import oncall
from alertbot.store.engine import Store

MAX_OVERRIDE = timedelta(days=31)
MENTION_RE = re.compile(r"^<@([UW][A-Z0-9]{2,20})(?:\|[^>]*)?>$|^@?([UW][A-Z0-9]{2,20})$")


@dataclass(frozen=True)
class OnCallNow:
    schedule: Schedule
    now: Shift
    next: Shift


def slack_user(text: str) -> str:
    """``<@U0CCC|carol>``, ``<@U0CCC>``, ``@U0CCC`` or ``U0CCC`` → ``U0CCC``."""
    match = MENTION_RE.match(text.strip())
    if match is None:
        raise PayloadError(f"{text!r} is not a Slack user: mention them, e.g. @carol")
    return match.group(1) or match.group(2)


class OncallService:
    def __init__(
        self,
        store: Store,
        *,
        roles: Roles,
        clock: Callable[[], datetime],
        config: Callable[[], OncallConfig],
        rota: Rota,
    ) -> None:
        self._store = store
        self._rota = rota  # the app's: one copy of each calendar, as escalation uses
        self._roles = roles
        self._clock = clock
        self._config = config

    def _schedule(self, name: str | None) -> Schedule:
        config = self._config()
        if name is None:
            if len(config.schedules) == 1:
                return config.schedules[0]
            names = ", ".join(s.name for s in config.schedules) or "none is configured (oncall.schedules)"
            raise PayloadError(f"name the schedule: {names}")
        schedule = config.schedule(name)
        if schedule is None:
            raise NotFound(f"no schedule {name!r} in oncall.schedules")
        return schedule

    async def who(self, name: str | None = None) -> list[OnCallNow]:
        """Who is on call now and who is next: for one schedule, or every schedule."""
        schedules = [self._schedule(name)] if name is not None else list(self._config().schedules)
        now = self._clock()
        overrides = await self._rota.overrides(now)
        return [OnCallNow(s, *await self._rota.now_and_next(s, now, overrides)) for s in schedules]

    async def override(self, actor: Actor, user: str, duration: str, schedule: str | None = None) -> Override:
        """``user`` covers ``schedule`` from now for ``duration`` (stored; replicas share it)."""
        await self._roles.require(actor, Action.OVERRIDE)
        length = parse_duration(duration)
        if not timedelta(minutes=1) <= length <= MAX_OVERRIDE:
            raise PayloadError(f"an override lasts from 1m to {format_duration(MAX_OVERRIDE)}, not {duration}")
        now = self._clock()
        made = Override(
            schedule=self._schedule(schedule).name,
            user=slack_user(user),
            start=now,
            end=now + length,
            created_by=actor.audit,
        )
        await self._store.write(oncall.add, made, now)
        return made
