"""Flap damping and resolve hysteresis: when a re-fire continues an earlier incident instead of
paging again, and how long a resolve is held back before it is sent.

An alert that re-fires gets a new ``startsAt`` from Alertmanager, so each firing is its own
*episode* (its own incident row). Episodes of one fingerprint form a chain led by the episode that
paged; a continuing episode notifies under its lead's identity (the same PagerDuty dedup key and
Slack message), so no new page is made.

Pure: the pipeline hands in what the store knows and applies the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from alertbot.domain.parse import format_duration


@dataclass(frozen=True)
class Episode:
    """One firing of an alert: from ``starts_at`` until ``ends_at`` (None while it fires)."""

    starts_at: datetime
    ends_at: datetime | None


@dataclass(frozen=True)
class FlapPolicy:
    transitions: int  # this many firing↔resolved transitions within window: flapping
    window: timedelta
    quiet: timedelta  # while flapping, a resolve waits this long for a re-fire


def transitions(episodes: Iterable[Episode], *, now: datetime, window: timedelta) -> int:
    """Firing↔resolved transitions within ``window`` before ``now``: each start and each end counts."""
    since = now - window
    count = 0
    for episode in episodes:
        count += since <= episode.starts_at <= now
        if episode.ends_at is not None:
            count += since <= episode.ends_at <= now
    return count


@dataclass(frozen=True)
class FlapState:
    """How often the chain has flipped lately and whether that is flapping."""

    transitions: int
    policy: FlapPolicy | None

    @property
    def flapping(self) -> bool:
        return self.policy is not None and self.transitions >= self.policy.transitions

    def describe(self) -> str:
        """``flapping 7×/30m`` (the × is meant)."""  # noqa: RUF002
        assert self.policy is not None
        return f"flapping {self.transitions}×/{format_duration(self.policy.window)}"  # noqa: RUF001


def flap_state(episodes: Iterable[Episode], policy: FlapPolicy | None, now: datetime) -> FlapState:
    if policy is None:
        return FlapState(0, None)
    return FlapState(transitions(episodes, now=now, window=policy.window), policy)


@dataclass(frozen=True)
class ResolveHold:
    """How long a resolve waits before it is sent, and why (zero: sent at once)."""

    delay: timedelta
    reason: str

    @property
    def held(self) -> bool:
        return self.delay > timedelta(0)


def resolve_hold(flap: FlapState, resolve_delay: timedelta | None) -> ResolveHold:
    """The longer of the route's ``resolve_delay`` and, while flapping, the quiet period."""
    hold = ResolveHold(timedelta(0), "")
    if resolve_delay:
        hold = ResolveHold(resolve_delay, f"resolve_delay {format_duration(resolve_delay)}")
    if flap.flapping:
        assert flap.policy is not None
        if flap.policy.quiet >= hold.delay:
            hold = ResolveHold(
                flap.policy.quiet, f"{flap.describe()}: waiting until quiet for {format_duration(flap.policy.quiet)}"
            )
    return hold


def continuation_reason(flap: FlapState, *, resolve_was_held: bool, lead_id: int) -> str | None:
    """Why a new firing continues the chain led by ``lead_id`` instead of paging; None: it pages.

    It continues when the previous episode's resolve is still held (it never went out, so the page
    is still open), or when the alert is flapping (PagerDuty is not re-triggered)."""
    if flap.flapping:
        return f"suppressed: {flap.describe()}, continues incident {lead_id}; PagerDuty not re-triggered"
    if resolve_was_held:
        return f"re-fired while its resolve was held: continues incident {lead_id}"
    return None
