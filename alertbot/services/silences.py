"""Silences: created and expired here only, with one validation wherever the request comes from.

Limits (docs/operations.md, "Roles and silences"): a silence lasts at most ``silences.max_duration``
(default 7 days); one whose matchers would match every alert needs ``force`` (never from Slack);
each new silence is recorded with its author and announced (who, matchers, until when).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from alertbot.domain.matchers import Matcher, MatchOp
from alertbot.domain.parse import format_duration, parse_duration
from alertbot.domain.silence import Silence
from alertbot.errors import NotFound, PayloadError
from alertbot.services.roles import Action, Actor, Roles, Source
from alertbot.store import incidents
from alertbot.store import silences as silence_repo
from alertbot.store.engine import Store

log = structlog.get_logger("alertbot.silences")

Announce = Callable[[Silence, Actor], Awaitable[None]]

# Label values a positive regex is tried on: one that accepts all of them (".*", ".+", "(.*)"…)
# requires nothing of an alert.
_PROBES = ("a", "Z", "0", "-", "x.y_z-9", "HighErrorRate", "ServiceDown", "critical", " ", "\n", "é")


def requires_something(matcher: Matcher) -> bool:
    """True for a matcher that only lets through alerts carrying something specific: ``name="value"``
    with a value, or ``name=~"re"`` whose regex an absent label ("") and arbitrary values fail. The
    negative ones (``!=``, ``!~``) and ``name=""`` let through every alert but a few (or every alert
    without that label), so they narrow nothing worth a silence on their own."""
    if matcher.op is MatchOp.EQ:
        return matcher.value != ""
    if matcher.op is MatchOp.RE:
        return not matcher.matches({}) and not all(matcher.matches({matcher.name: p}) for p in _PROBES)
    return False


def matches_everything(matchers: Sequence[Matcher]) -> bool:
    """Whether a silence would mute (nearly) every alert: none of its matchers requires anything."""
    return not any(requires_something(m) for m in matchers)


def parse_length(raw: str | int | float | timedelta) -> timedelta:
    """A silence's duration; values too large to represent are a client error, never an overflow."""
    try:
        return parse_duration(raw)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, OverflowError):
            raise PayloadError(f"duration {raw!r} is too long") from None
        raise PayloadError(str(exc)) from None


def parse_matchers(raw: Sequence[str | Matcher]) -> list[Matcher]:
    try:
        return [m if isinstance(m, Matcher) else Matcher.parse(m) for m in raw]
    except ValueError as exc:
        raise PayloadError(str(exc)) from None


def _too_long(limits: SilenceLimits) -> str:
    limit = limits.max_duration
    days, rest = divmod(limit, timedelta(days=1))
    shown = f"{days}d" if days and not rest else format_duration(limit)
    return f"a silence may last at most {shown} (silences.max_duration)"


@dataclass(frozen=True)
class SilenceLimits:
    max_duration: timedelta = timedelta(days=7)


def validate(
    matchers: Sequence[Matcher],
    *,
    now: datetime,
    ends_at: datetime,
    limits: SilenceLimits,
    force: bool,
    source: Source,
) -> None:
    """The one check every new silence passes (raises ``PayloadError`` saying what to change)."""
    if not matchers:
        raise PayloadError("a silence needs at least one matcher, e.g. service=grocery")
    if ends_at <= now:
        raise PayloadError("the duration must be positive: the silence would end before it starts")
    if ends_at - now > limits.max_duration:
        raise PayloadError(_too_long(limits))
    if matches_everything(matchers):
        shown = " ".join(str(m) for m in matchers)
        if source is Source.SLACK:
            raise PayloadError(
                f"{shown} would silence every alert, all paging included: name the alerts to silence "
                "(e.g. service=grocery alertname=HighLatencyP95)"
            )
        if not force:
            flag = '"force": true' if source is Source.API else "--force"
            raise PayloadError(f"{shown} would silence every alert, all paging included: pass {flag} if you mean it")


async def _log_only(silence: Silence, actor: Actor) -> None:
    return None


class SilenceService:
    def __init__(
        self,
        store: Store,
        *,
        roles: Roles,
        clock: Callable[[], datetime],
        limits: SilenceLimits = SilenceLimits(),
        announce: Announce | None = None,  # None: logged only
    ) -> None:
        self._store = store
        self._roles = roles
        self._clock = clock
        self.limits = limits
        self._announce = announce or _log_only

    async def create(
        self,
        actor: Actor,
        matchers: Sequence[str | Matcher],
        *,
        duration: str | int | float | timedelta | None = None,
        ends_at: datetime | None = None,
        comment: str = "",
        force: bool = False,
    ) -> Silence:
        """Check the role and the limits, store the silence with its author, announce it."""
        await self._roles.require(actor, Action.SILENCE)
        if actor.source is not Source.SLACK and actor.audit.startswith("slack:"):
            # Slack authors are recorded by alertbot from a signed request, never claimed by a caller.
            raise PayloadError(f"created_by: {actor.audit!r} names a Slack user; give your own name")
        parsed = parse_matchers(matchers)
        now = self._clock()
        if (duration is None) == (ends_at is None):
            raise PayloadError("give exactly one of duration (e.g. '2h') or ends_at")
        if duration is not None:
            length = parse_length(duration)
            if length > self.limits.max_duration:  # refused before computing an end that may not exist
                raise PayloadError(_too_long(self.limits))
            ends_at = now + length
        assert ends_at is not None
        validate(parsed, now=now, ends_at=ends_at, limits=self.limits, force=force, source=actor.source)
        silence = await self._store.write(
            silence_repo.create,
            parsed,
            starts_at=now,
            ends_at=ends_at,
            created_by=actor.audit,
            comment=comment,
            now=now,
        )
        log.info(
            "silence_created",
            silence_id=silence.id,
            by=actor.audit,
            matchers=[str(m) for m in silence.matchers],
            until=silence.ends_at.isoformat(),
            forced=force and matches_everything(parsed),
        )
        try:
            await self._announce(silence, actor)
        except Exception as exc:  # the silence stands; a failed announcement is logged, not raised
            log.warning("silence_announce_failed", silence_id=silence.id, error=type(exc).__name__)
        return silence

    async def for_incident(self, actor: Actor, incident_id: int, duration: timedelta) -> Silence:
        """Silence one incident's alert — its alertname, service and namespace — for ``duration``."""
        await self._roles.require(actor, Action.SILENCE)
        incident = await self._store.read(incidents.get, incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        matchers = [
            Matcher.create(name, MatchOp.EQ, incident.labels[name])
            for name in ("alertname", "service", "namespace")
            if incident.labels.get(name)
        ]
        if not matchers:
            raise PayloadError("this alert has no alertname, service or namespace label to silence on")
        comment = f"Silence {format_duration(duration)} on incident {incident_id}"
        return await self.create(actor, matchers, duration=duration, comment=comment)

    async def expire(self, actor: Actor, silence_id: int) -> None:
        await self._roles.require(actor, Action.SILENCE)
        if not await self._store.write(silence_repo.expire, silence_id, self._clock()):
            raise NotFound(f"no active silence {silence_id}")
        log.info("silence_expired", silence_id=silence_id, by=actor.audit)

    async def list(self, *, include_expired: bool) -> list[Silence]:
        return await self._store.read(silence_repo.list_all, include_expired=include_expired, now=self._clock())
