"""The per-alert decisions of ingest that read the batch view and write nothing: what an arrival is
(dedup), muting (silences and inhibition, behind one ``Muter`` interface that answers "muted? by
what?", as Alertmanager's), whether an alert joins or starts a storm, and change correlation.
Each is testable from a table without HTTP or a database (tests/unit/test_ingest_stages.py);
routing is domain/route.py's, flapping domain/flapping.py's, automations domain/automation.py's.

The order a new firing alert meets them (ingest.py):
dedup → paged before? → continue/flap (chains.py) → silence → inhibit → automations → route → storm (storm.py)
→ correlate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from alertbot.domain.changes import correlate
from alertbot.domain.changes import describe as describe_change
from alertbot.domain.inhibit import InhibitRule, inhibiting_rule
from alertbot.domain.matchers import all_match
from alertbot.domain.models import AlertStatus, NotificationReason, Severity
from alertbot.domain.silence import Silence, find_silence
from alertbot.ingest.view import Labels, Scope, scope_of
from alertbot.notify.base import CorrelatedChange
from alertbot.settings_sections import StormConfig
from alertbot.store.change_events import ChangeEvent
from alertbot.store.incidents import IncidentRecord
from alertbot.store.storms import storm_id_of


class Arrival(StrEnum):
    """What an alert in a payload is, against the incident stored for its (fingerprint, startsAt)."""

    NEW = "new"  # not stored before: classified, and (firing) on to continue/flap, muting, routing
    REPEAT = "repeat"  # still firing, seen before: refreshed; a muted one is looked at again
    LATE_COPY = "late copy"  # a firing copy of an episode that has resolved since: nothing to do
    RESOLVE = "resolve"  # the resolve of a firing episode
    REPEATED_RESOLVE = "repeated resolve"  # a resolve of an episode resolved already: nothing to do


def arrival(status: AlertStatus, stored: IncidentRecord | None) -> Arrival:
    """Dedup by (fingerprint, startsAt)."""
    if stored is None:
        return Arrival.NEW
    firing_before = stored.status == "firing"
    if status is AlertStatus.FIRING:
        return Arrival.REPEAT if firing_before else Arrival.LATE_COPY
    return Arrival.RESOLVE if firing_before else Arrival.REPEATED_RESOLVE


# Why a new firing alert that Alertmanager sends as a repeat is recorded but not paged.
PAGED_BEFORE = (
    'paged before: Alertmanager sent it as "repeat interval elapsed", so it delivered this alert '
    "before, when this store had no record of it yet (a new or restored database); recorded, not paged again"
)


def paged_before(status: AlertStatus, reason: str) -> bool:
    """A firing alert the store has never seen, in a notification Alertmanager sent only because its
    repeat interval elapsed: the group is unchanged since a notification that reached alertbot, so
    the page went out then. It is recorded (and its resolve still sent, to close that page)."""
    return status is AlertStatus.FIRING and reason == NotificationReason.REPEAT


def mute_may_have_ended(incident: IncidentRecord) -> bool:
    """A repeat of a muted alert is decided again (its silence may have ended, its inhibiting source
    resolved) — unless it is muted as part of a chain or a storm, which end by their own rules, or
    was paged before this store."""
    return (
        bool(incident.suppressed_by)
        and incident.lead_id is None
        and storm_id_of(incident.suppressed_by) is None
        and incident.suppressed_by != PAGED_BEFORE
    )


class StormStep(StrEnum):
    JOIN = "join"
    START = "start"


def storm_step(
    policy: StormConfig | None, incident: IncidentRecord, in_storm: bool, arrivals: Callable[[], int]
) -> StormStep | None:
    """A new firing alert of a group already in a storm joins it; one that takes the group's arrivals
    within the window past the threshold starts one. ``arrivals`` (a statement) is only asked when
    the group has no storm."""
    if policy is None or not incident.group_key:
        return None
    if in_storm:
        return StormStep.JOIN
    return StormStep.START if arrivals() > policy.threshold else None


class SourcesView(Protocol):
    """The inhibition sources of a batch, as the inhibit stage reads them (view.InhibitionSources)."""

    def sources(self, rule_index: int, scope: Scope, target: Mapping[str, str]) -> list[Labels]: ...


class Muter(Protocol):
    """Muted? By what? — the reason (kept as the incident's ``suppressed_by``), or None."""

    reason: str  # the metric label counting what it mutes

    def muted(self, incident: IncidentRecord, labels: Mapping[str, str]) -> str | None: ...


class SilenceMuter:
    reason = "silenced"

    def __init__(self, silences: Callable[[], Sequence[Silence]], now: datetime) -> None:
        self._silences, self._now = silences, now

    def muted(self, incident: IncidentRecord, labels: Mapping[str, str]) -> str | None:
        silence = find_silence(self._silences(), labels, self._now)
        if silence is None:
            return None
        return f"silence {silence.id} by {silence.created_by} until {silence.ends_at.isoformat()}"


class InhibitMuter:
    """A firing source alert mutes matching targets. Sources are only read when a rule targets this
    alert, only those of its service (and namespace) when the rule requires them equal, and only
    those sharing its ``equal`` labels are looked at (view.InhibitionSources indexes them)."""

    reason = "inhibited"

    def __init__(self, rules: Sequence[InhibitRule], sources: SourcesView) -> None:
        self._rules, self._sources = list(rules), sources

    def muted(self, incident: IncidentRecord, labels: Mapping[str, str]) -> str | None:
        for i, rule in enumerate(self._rules):
            if not all_match(rule.target_matchers, labels):
                continue
            scope = scope_of(rule, incident.service, incident.namespace)
            if inhibiting_rule([rule], labels, self._sources.sources(i, scope, labels)) is not None:
                return rule.describe()
        return None


def first_muter(muters: Iterable[Muter], incident: IncidentRecord, labels: Mapping[str, str]) -> tuple[str, str] | None:
    """(reason, muted by) of the first muter that mutes the incident."""
    for muter in muters:
        muted_by = muter.muted(incident, labels)
        if muted_by is not None:
            return muter.reason, muted_by
    return None


def recent_changes(
    incident: IncidentRecord, changes: Callable[[str], list[ChangeEvent]], lookback: timedelta
) -> list[CorrelatedChange]:
    """What changed on the service shortly before a warning or critical alert started."""
    if incident.severity is Severity.INFO or not incident.service:
        return []
    found = correlate(
        changes(incident.service),
        service=incident.service,
        namespace=incident.namespace,
        started=incident.starts_at,
        lookback=lookback,
    )
    return [
        CorrelatedChange(id=c.id, kind=c.kind, text=describe_change(c, incident.starts_at), target=c.target)
        for c in found
    ]
