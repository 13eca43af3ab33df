"""The batch view: what one ingest transaction knows, read once for the whole batch and kept current
as the batch's own changes are applied to it (``apply``, ``resolved``), instead of read again.

Payloads of a batch still see each other as if each had its own transaction: an incident the batch
inserted up front counts (as an inhibition source, say) only from its first arrival on
(``take_new``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from alertbot.domain.flapping import Episode
from alertbot.domain.inhibit import InhibitRule
from alertbot.domain.matchers import MatchOp, all_match
from alertbot.domain.models import AlertStatus, WebhookPayload
from alertbot.domain.silence import Silence
from alertbot.settings_sections import StormConfig
from alertbot.store import change_events, incidents
from alertbot.store import silences as silence_repo
from alertbot.store import storms as storm_repo
from alertbot.store.incidents import IncidentRecord

Labels = dict[str, str]
# Which firing incidents a rule's sources are read from: (service, namespace), either None for "any".
Scope = tuple[str | None, str | None]


class Episodes:
    """The episodes of the fingerprints in a batch (each alert firing is an episode), kept current
    as the batch is ingested: what flap counting and chain continuation look at."""

    def __init__(self, known: dict[tuple[str, datetime], IncidentRecord]) -> None:
        self.known = known
        self._by_id = {r.id: r for r in known.values()}
        self._by_fingerprint: dict[str, dict[int, IncidentRecord]] = {}
        for record in known.values():
            self._by_fingerprint.setdefault(record.fingerprint, {})[record.id] = record

    def add(self, record: IncidentRecord) -> None:
        """A new episode, or a newer view of a known one."""
        self.known[record.key] = record
        self._by_id[record.id] = record
        self._by_fingerprint.setdefault(record.fingerprint, {})[record.id] = record

    def previous(self, record: IncidentRecord) -> IncidentRecord | None:
        earlier = [r for r in self._by_fingerprint.get(record.fingerprint, {}).values() if r.id < record.id]
        return max(earlier, key=lambda r: r.id, default=None)

    def lead_of(self, conn: Connection, record: IncidentRecord) -> IncidentRecord:
        if record.lead_id is None:
            return record
        lead = self._by_id.get(record.lead_id) or incidents.get(conn, record.lead_id)
        assert lead is not None, f"incident {record.id} continues missing incident {record.lead_id}"
        return lead

    def of(self, fingerprint: str) -> list[Episode]:
        return [
            Episode(r.starts_at, (r.ends_at or r.resolved_at) if r.status == "resolved" else None)
            for r in self._by_fingerprint.get(fingerprint, {}).values()
        ]


def _severity_of(rule: InhibitRule) -> str | None:
    """The severity every source of the rule has, when its source matchers pin one (it is a column:
    the store reads only those)."""
    for matcher in rule.source_matchers:
        if matcher.name == "severity" and matcher.op is MatchOp.EQ:
            return matcher.value
    return None


def scope_of(rule: InhibitRule, service: str, namespace: str) -> Scope:
    """Where a rule's sources for a target of this service and namespace can be: only its service
    (and namespace) when the rule requires them equal."""
    return (
        service if "service" in rule.equal and service else None,
        namespace if "namespace" in rule.equal else None,
    )


class InhibitionSources:
    """Firing incidents that can inhibit, as Alertmanager's inhibitor keeps them: per rule, only
    those matching its source matchers, indexed by the values of its ``equal`` labels, so a check
    costs the same however many incidents are firing. The store is the truth: each scope a check
    needs is read once per batch (by service, namespace and severity, an indexed read), and the
    batch's own arrivals and resolves are applied as they happen."""

    def __init__(
        self,
        rules: Sequence[InhibitRule],
        read: Callable[[str | None, str | None, str | None], Mapping[int, tuple[str, str, Labels]]],
        not_arrived: Mapping[tuple[str, datetime], IncidentRecord],
    ) -> None:
        self._rules = list(rules)
        self._read = read
        self._not_arrived = not_arrived  # the batch's incidents inserted up front, not arrived yet
        self._loaded: list[set[Scope]] = [set() for _ in self._rules]
        self._index: list[dict[tuple[Scope, tuple[str, ...]], dict[int, Labels]]] = [{} for _ in self._rules]
        self._gone: set[int] = set()  # resolved in this batch

    def sources(self, rule_index: int, scope: Scope, target: Mapping[str, str]) -> list[Labels]:
        """The firing sources of one rule that share the target's ``equal`` labels, in its scope."""
        rule = self._rules[rule_index]
        if scope not in self._loaded[rule_index]:
            self._load(rule_index, scope)
        key = tuple(target.get(name, "") for name in rule.equal)
        return list(self._index[rule_index].get((scope, key), {}).values())

    def _load(self, rule_index: int, scope: Scope) -> None:
        rule = self._rules[rule_index]
        skip = {record.id for record in self._not_arrived.values()} | self._gone
        index = self._index[rule_index]
        for incident_id, (_, _, labels) in self._read(scope[0], scope[1], _severity_of(rule)).items():
            if incident_id not in skip and all_match(rule.source_matchers, labels):
                index.setdefault((scope, tuple(labels.get(n, "") for n in rule.equal)), {})[incident_id] = labels
        self._loaded[rule_index].add(scope)

    def firing(self, record: IncidentRecord) -> None:
        """An incident of the batch arrived firing: a source from now on, where it matches."""
        labels = {**record.labels, "severity": record.severity.value}
        for i, rule in enumerate(self._rules):
            if not all_match(rule.source_matchers, labels):
                continue
            key = tuple(labels.get(n, "") for n in rule.equal)
            for scope in self._scopes(record):
                if scope in self._loaded[i]:
                    self._index[i].setdefault((scope, key), {})[record.id] = labels

    def resolved(self, record: IncidentRecord) -> None:
        self._gone.add(record.id)
        labels = {**record.labels, "severity": record.severity.value}
        for i, rule in enumerate(self._rules):
            key = tuple(labels.get(n, "") for n in rule.equal)
            for scope in self._scopes(record):
                self._index[i].get((scope, key), {}).pop(record.id, None)

    @staticmethod
    def _scopes(record: IncidentRecord) -> list[Scope]:
        return [(record.service, record.namespace), (record.service, None), (None, record.namespace), (None, None)]


class BatchView:
    """One ingest transaction's reads, each done once for the whole batch where it can be: the known
    episodes of its alerts, the active silences, the recent changes of its services, storm counts,
    inhibition sources — and the batch's own changes applied to them as they happen."""

    def __init__(
        self,
        conn: Connection,
        payloads: list[WebhookPayload],
        now: datetime,
        *,
        lookback: timedelta,
        storm: StormConfig | None,
        inhibit_rules: Sequence[InhibitRule],
    ) -> None:
        self._conn, self._now = conn, now
        alerts = [a for p in payloads for a in p.alerts]
        self.episodes = Episodes(incidents.episodes(conn, [a.fingerprint for a in alerts]))
        # Storm bookkeeping. Only groups with a firing alert can start or join a storm (a batch of
        # resolves reads nothing); a group's arrivals are counted only when it has no storm yet.
        groups = (
            sorted(
                {p.group_key for p in payloads if p.group_key and any(a.status is AlertStatus.FIRING for a in p.alerts)}
            )
            if storm is not None
            else []
        )
        self._storms = storm_repo.active_of(conn, groups)
        self._storm_groups = groups
        self._storm_since = now - storm.window if storm is not None else now
        self._counted_before: dict[str, int] = {}  # group → arrivals in the window before this batch
        self._new_per_group: Counter[str] = Counter()  # group → incidents this batch inserted up front
        self._new_here: dict[str, list[int]] = {}  # group → this batch's new incidents taken so far
        self._services = {a.service for a in alerts if a.service}
        starts = [a.starts_at for a in alerts] or [now]
        self._window = (min(starts) - lookback, max(starts))
        self._silences: list[Silence] | None = None
        self._changes: dict[str, list[change_events.ChangeEvent]] | None = None
        self._not_taken: dict[tuple[str, datetime], IncidentRecord] = {}  # inserted up front, not yet arrived
        # No callbacks into the view itself: a view and its parts referring to each other would be
        # a reference cycle per batch, left for the garbage collector (test_ingest_garbage.py).
        self.inhibition = InhibitionSources(
            inhibit_rules,
            lambda service, namespace, severity: incidents.firing_sources(
                conn, service=service, namespace=namespace, severity=severity
            ),
            self._not_taken,
        )

    def inserted_up_front(self, records: list[IncidentRecord]) -> None:
        """The batch's new incidents, stored before its payloads are ingested: each counts from its
        first arrival (``take_new``) on."""
        self._not_taken.update((record.key, record) for record in records)
        self._new_per_group = Counter(record.group_key for record in records)

    def take_new(self, key: tuple[str, datetime]) -> IncidentRecord:
        """A new alert's first arrival in the batch: its incident joins the batch's view."""
        incident = self._not_taken.pop(key)
        self.episodes.add(incident)
        self._new_here.setdefault(incident.group_key, []).append(incident.id)
        if incident.status == "firing":
            self.inhibition.firing(incident)
        return incident

    def apply(self, record: IncidentRecord) -> None:
        """A newer state of one of the batch's incidents (its outcome, its chain): later payloads of
        the batch see it at once."""
        self.episodes.add(record)

    def resolved(self, record: IncidentRecord) -> None:
        self.episodes.add(record)
        self.inhibition.resolved(record)

    def silences(self) -> list[Silence]:
        if self._silences is None:
            self._silences = silence_repo.active(self._conn, self._now)
        return self._silences

    def changes(self, service: str) -> list[change_events.ChangeEvent]:
        """The batch's services' changes in the window its alerts' correlation can reach."""
        if self._changes is None:
            self._changes = {}
            since, until = self._window
            for event in change_events.around(self._conn, services=self._services, since=since, until=until):
                self._changes.setdefault(event.service, []).append(event)
        return self._changes.get(service, [])

    def changes_recorded(self) -> None:
        """A change was recorded in this transaction: read them again when next asked."""
        self._changes = None

    def storm(self, group_key: str) -> storm_repo.Storm | None:
        return self._storms.get(group_key)

    def storm_changed(self, storm: storm_repo.Storm) -> None:
        self._storms[storm.group_key] = storm

    def storm_ended(self, storm: storm_repo.Storm) -> None:
        if (current := self._storms.get(storm.group_key)) is not None and current.id == storm.id:
            del self._storms[storm.group_key]

    def arrivals_in_window(self, group_key: str, incident_id: int) -> int:
        """Alerts of the group that arrived within the storm window, up to and including this one."""
        if group_key not in self._counted_before:
            # Counted for every group of the batch not counted yet, with one statement (the batch's
            # incidents are all inserted up front, so the counts cannot change before each group is
            # asked). The store counts every incident this batch inserted up front: only those taken
            # so far count, below.
            groups = [g for g in self._storm_groups if g not in self._counted_before]
            if group_key not in groups:
                groups.append(group_key)
            stored = storm_repo.arrived_in(self._conn, groups, self._storm_since)
            for group in groups:
                self._counted_before[group] = stored.get(group, 0) - self._new_per_group[group]
        here = self._new_here.get(group_key, ())
        return self._counted_before[group_key] + sum(1 for i in here if i <= incident_id)


def with_outcome(
    record: IncidentRecord, destinations: Iterable[dict[str, Any]], suppressed_by: str | None
) -> IncidentRecord:
    return dataclasses.replace(record, destinations=list(destinations), suppressed_by=suppressed_by)
