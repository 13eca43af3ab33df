"""The per-alert decisions of ingest that read the batch view and write nothing: muting (silences
and inhibition, behind one ``Muter`` interface that answers "muted? by what?", as Alertmanager's),
routing and change correlation. Each is testable from a table without HTTP or a database
(tests/unit/test_ingest_stages.py).

The order a new firing alert meets them (ingest.py):
dedup → continue/flap (chains.py) → silence → inhibit → automations → route → storm (storm.py)
→ correlate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from alertbot.domain.changes import correlate
from alertbot.domain.changes import describe as describe_change
from alertbot.domain.inhibit import InhibitRule, inhibiting_rule
from alertbot.domain.matchers import all_match
from alertbot.domain.models import Severity
from alertbot.domain.silence import Silence, find_silence
from alertbot.ingest.view import Labels, Scope, scope_of
from alertbot.notify.base import CorrelatedChange
from alertbot.store.change_events import ChangeEvent
from alertbot.store.incidents import IncidentRecord


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
