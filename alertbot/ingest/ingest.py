"""One ingest transaction: every payload of a group-commit batch, alert by alert, in order.

    insert the batch's new alerts (one statement) ─▶ per payload, per alert:
        heartbeat? (heartbeat.py) · dedup by (fingerprint, startsAt) · a resolve (chains.py)
        new and firing: paged before (an Alertmanager repeat)? ─▶ continue/flap (chains.py)
            ─▶ silence ─▶ inhibit ─▶ automations
            ─▶ route (+ shadow) ─▶ storm (storm.py) ─▶ correlate ─▶ outbox rows
    ─▶ the writer writes outcomes and rows (writer.py) ─▶ storms' summaries, once per batch

The decisions that only read live in stages.py over the batch view (view.py); the writes of the
batch go through its writer.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from alertbot.domain.classify import classify
from alertbot.domain.models import Alert, AlertStatus, Classification, Severity, WebhookPayload
from alertbot.domain.oncall import describe_plan, plan
from alertbot.domain.outbox import Channel, OutboxIntent
from alertbot.domain.route import RouteResult, route
from alertbot.ingest.chains import Chains
from alertbot.ingest.heartbeat import DeadMansSwitch
from alertbot.ingest.routing import outbox_row, route_destinations, split_destinations
from alertbot.ingest.stages import (
    PAGED_BEFORE,
    Arrival,
    InhibitMuter,
    SilenceMuter,
    arrival,
    first_muter,
    mute_may_have_ended,
    paged_before,
    recent_changes,
)
from alertbot.ingest.storm import Storms
from alertbot.ingest.view import BatchView
from alertbot.ingest.writer import BatchWriter
from alertbot.notify.base import Destination, Event, Notification
from alertbot.notify.escalation_plan import PlannedRow, policy_rows
from alertbot.runbooks.automations import request_runs
from alertbot.settings import Config
from alertbot.shadow import record_shadow, stored_destinations
from alertbot.store import change_events, decisions, incident_notes, incidents, outbox
from alertbot.store import storms as storm_repo
from alertbot.store.incidents import IncidentRecord

log = structlog.get_logger("alertbot.pipeline")


@dataclass
class IngestStats:
    alerts: int = 0
    duplicates: int = 0
    classified: Counter[Severity] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    notifications: int = 0
    handed_off: list[outbox.OutboxRow] = field(default_factory=list)
    automation_runs: list[int] = field(default_factory=list)

    def add(self, other: IngestStats) -> None:
        self.alerts += other.alerts
        self.duplicates += other.duplicates
        self.classified.update(other.classified)
        self.suppressed.update(other.suppressed)
        self.notifications += other.notifications


class Ingest:
    """What the store and the outbox get for a batch of payloads (one transaction, ``ingest_all``)."""

    def __init__(
        self,
        config: Config,
        enabled_channels: Iterable[str],
        heartbeat: DeadMansSwitch,
        *,
        owner: Callable[[], str],
        lease: Callable[[], timedelta],
    ) -> None:
        self._config = config
        self._enabled = frozenset(enabled_channels)
        self._heartbeat = heartbeat
        self._owner, self._lease = owner, lease

    def ingest_all(self, conn: Connection, payloads: list[WebhookPayload], now: datetime) -> list[IngestStats]:
        config = self._config
        view = BatchView(
            conn,
            payloads,
            now,
            lookback=config.correlation.lookback,
            storm=config.storm,
            inhibit_rules=config.inhibit_rules,
        )
        writer = BatchWriter(conn, view, now, owner=self._owner(), lease_until=now + self._lease())
        batch = _Batch(
            self._config, self._enabled, heartbeat=self._heartbeat, conn=conn, view=view, writer=writer, now=now
        )
        view.inserted_up_front(self._insert_new(conn, payloads, view.episodes.known, now))
        results = [batch.ingest(payload) for payload in payloads]
        batch.storms.write()
        writer.flush()
        if results:
            results[-1].notifications += batch.storms.queued
        return results

    def _insert_new(
        self,
        conn: Connection,
        payloads: list[WebhookPayload],
        known: Mapping[tuple[str, datetime], IncidentRecord],
        now: datetime,
    ) -> list[IncidentRecord]:
        """Every alert of the batch not stored yet (by fingerprint and startsAt), classified and
        inserted with one statement, ids in arrival order. Each is then ingested at its first arrival."""
        new: dict[tuple[str, datetime], tuple[Alert, Classification, str]] = {}
        for payload in payloads:
            for alert in payload.alerts:
                key = (alert.fingerprint, alert.starts_at)
                if key in known or key in new or self._heartbeat.is_heartbeat(alert):
                    continue
                new[key] = (
                    alert,
                    classify(alert, self._config.classification, self._config.thresholds),
                    payload.group_key,
                )
        return incidents.insert_many(conn, list(new.values()), now)


class _Batch:
    """The stages of one transaction, over its view, writing through its writer. ``conn`` is for
    statements on what the writer never buffers (an incident's status and last-seen time, run
    requests, shadow decisions, change events); anything that reads or changes outcomes or outbox
    rows goes through ``writer.conn``."""

    def __init__(
        self,
        config: Config,
        enabled: frozenset[str],
        *,
        heartbeat: DeadMansSwitch,
        conn: Connection,
        view: BatchView,
        writer: BatchWriter,
        now: datetime,
    ) -> None:
        self._config, self._enabled, self._heartbeat = config, enabled, heartbeat
        self._conn, self._view, self._writer, self._now = conn, view, writer, now
        self.chains = Chains(config, view, writer, now)
        self.storms = Storms(config.storm, view, writer, now)
        self._escalations: list[PlannedRow] = []  # queued per payload
        self._quiet: list[tuple[list[OutboxIntent], datetime, str]] = []  # pages waiting for quiet hours to end
        self._silence = SilenceMuter(view.silences, now)
        self._inhibit = InhibitMuter(config.inhibit_rules, view.inhibition)

    def ingest(self, payload: WebhookPayload) -> IngestStats:
        """Each alert of the payload, by what its arrival is (``stages.arrival``)."""
        conn, now, view = self._conn, self._now, self._view
        stats = IngestStats(alerts=len(payload.alerts))
        known = view.episodes.known
        decide: list[tuple[IncidentRecord, Event]] = []
        resolved: list[IncidentRecord] = []
        rows: list[OutboxIntent] = []  # sent after a claim, in order behind earlier rows

        for alert in payload.alerts:
            if self._heartbeat.is_heartbeat(alert):
                # The dead man's switch: recorded, never notified (but it resolves a "broken" page).
                stats.notifications += self._heartbeat.seen(self._writer.conn, alert, now)
                continue
            key = (alert.fingerprint, alert.starts_at)
            stored = known.get(key)
            kind = arrival(alert.status, stored)
            if kind is Arrival.NEW:
                incident = view.take_new(key)  # inserted up front for this batch; this is its first arrival
                if alert.status is AlertStatus.FIRING and incident.reason.startswith("event:"):
                    _record_change(conn, alert, now)
                    view.changes_recorded()
                stats.classified[incident.severity] += 1
                if paged_before(alert.status, payload.notification_reason) and view.episodes.previous(incident) is None:
                    self._record_paged_before(incident, stats)
                    continue
                if alert.status is AlertStatus.FIRING:
                    continued = self.chains.continue_chain(incident)
                    if continued is not None:
                        stats.suppressed["continued"] += 1
                        rows += continued
                        continue
                decide.append((incident, "trigger" if alert.status is AlertStatus.FIRING else "resolve"))
                continue
            assert stored is not None
            if kind is Arrival.REPEAT:
                stats.duplicates += 1
                incidents.refresh(conn, stored.id, alert, now)
                if mute_may_have_ended(stored):
                    decide.append((stored, "trigger"))
            elif kind is Arrival.RESOLVE:
                if not incidents.resolve(conn, stored.id, alert, now):
                    stats.duplicates += 1  # resolved meanwhile by another replica's copy: notify nothing
                    continue
                updated = dataclasses.replace(
                    stored,
                    status="resolved",
                    ends_at=alert.ends_at or now,
                    annotations=dict(alert.annotations),
                    resolved_at=now,
                )
                view.resolved(updated)
                resolved.append(updated)
            else:  # a late copy, a repeated resolve
                stats.duplicates += 1
        self._queue(payload, stats, decide, resolved, rows)
        return stats

    def _queue(
        self,
        payload: WebhookPayload,
        stats: IngestStats,
        decide: list[tuple[IncidentRecord, Event]],
        resolved: list[IncidentRecord],
        rows: list[OutboxIntent],
    ) -> None:
        """The notifications of the payload's decided triggers and resolves, queued in order."""
        now, view = self._now, self._view
        # A new alert's own trigger: nothing can be ahead of it, so it is handed to the local sender
        # at once. A re-fire's is queued behind whatever its previous episode still has to send.
        direct: list[OutboxIntent] = []
        for incident, event in decide:
            decided = self._decide(incident, event, payload, stats)
            first = view.episodes.previous(incident) is None
            (direct if event == "trigger" and first else rows).extend(decided)
        storms_touched: set[int] = set()
        held: list[tuple[list[OutboxIntent], datetime, str]] = []
        for incident in resolved:
            storm_id = storm_repo.storm_id_of(incident.suppressed_by)
            if storm_id is not None:
                storms_touched.add(storm_id)
            resolve_rows, hold = self.chains.resolve(incident, rows)
            resolve_rows = self._unless_never_paged(incident, resolve_rows)
            if hold.held and resolve_rows:
                # Escalation goes on while the resolve waits: a re-fire continues the incident.
                held.append((resolve_rows, now + hold.delay, hold.reason))
            else:
                rows += resolve_rows
                if self._config.oncall.escalations:  # else no page of this config escalates
                    outbox.cancel_escalation(self._writer.conn, [incident.id, incident.chain_id], why="resolved")
        for storm_id in sorted(storms_touched):
            rows.extend(self.storms.end_if_quiet(storm_id))
        self._writer.enqueue(rows)
        for held_rows, until, why in held:  # after any update of the same message queued above
            self._writer.enqueue(held_rows, hold=(until, why))
        self._writer.enqueue(direct, hand_to=stats.handed_off)
        for quiet_rows, until, why in self._quiet:
            self._writer.enqueue(quiet_rows, hold=(until, why))
            stats.notifications += len(quiet_rows)
        self._quiet.clear()
        for row, due, why in self._escalations:  # behind the pages they escalate
            self._writer.enqueue([row], hold=(due, why))
        self._escalations.clear()
        stats.notifications += len(rows) + len(direct) + sum(len(r) for r, _, _ in held)

    def _unless_never_paged(self, incident: IncidentRecord, resolve_rows: list[OutboxIntent]) -> list[OutboxIntent]:
        """A page still waiting for quiet hours to end is cancelled, and its resolve not sent: the
        alert came and went while nobody was to be told (the timeline says so)."""
        if not self._config.routes.quiet_hours_anywhere():  # else no page of this config waits
            return resolve_rows
        conn = self._writer.conn
        skipped = outbox.cancel_waiting_pages(conn, [incident.id, incident.chain_id], why="resolved during quiet hours")
        if skipped:
            text = f"resolved during quiet hours: nothing was sent to {', '.join(sorted(skipped))}"
            incident_notes.add(conn, [incident.chain_id, incident.id], kind="quiet_hours", now=self._now, text=text)
        return [r for r in resolve_rows if r.channel not in skipped]

    def _decide(
        self, incident: IncidentRecord, event: Event, payload: WebhookPayload, stats: IngestStats
    ) -> list[OutboxIntent]:
        """The notification rows of one alert's own (storm members send theirs once per batch)."""
        conn, now = self._conn, self._now
        labels = {**incident.labels, "severity": incident.severity.value}
        # Silences mute triggers and resolves; inhibition only triggers. A muted alert starts no
        # automation either.
        muted: tuple[str, str] | None = None
        if (silenced := self._silence.muted(incident, labels)) is not None:
            muted = (self._silence.reason, silenced)
        elif event == "trigger":
            muted = first_muter([self._inhibit], incident, labels)
        if muted is not None:
            reason, suppressed_by = muted
            if suppressed_by != incident.suppressed_by:
                stats.suppressed[reason] += 1
                self._writer.set_outcome(incident, destinations=[], suppressed_by=suppressed_by)
                log.info(
                    "alert_suppressed",
                    incident_id=incident.id,
                    fingerprint=incident.fingerprint,
                    suppressed_by=suppressed_by,
                )
            return []
        approvals = self._request_automations(incident, labels, stats) if event == "trigger" else []
        routed = route(self._config.routes, labels)
        dests, shadow = split_destinations(self._config, routed, incident.severity, self._enabled)
        record_shadow(conn, incident, event, shadow, now)
        storm = self.storms.join_or_start(incident, payload, dests) if event == "trigger" and dests else None
        if storm is not None:
            stats.suppressed["storm"] += 1
            self._writer.set_outcome(
                incident,
                destinations=[],
                suppressed_by=f"{storm.marker} summarised with {storm.count} alerts of its "
                f"group (incident {storm.anchor_incident_id})",
            )
            return []
        stored = stored_destinations(dests, shadow)
        if incident.suppressed_by is None:
            self._writer.set_outcome(incident, destinations=stored, suppressed_by=None)
        else:  # the suppression it lifts may be this batch's: through writer.conn
            if not incidents.lift_suppression(
                self._writer.conn, incident.id, was=incident.suppressed_by, destinations=stored, now=now
            ):
                return []  # another replica lifted it from its copy of the same alert, and notified
            self._view.apply(dataclasses.replace(incident, destinations=stored, suppressed_by=None))
        changes = (
            recent_changes(incident, self._view.changes, self._config.correlation.lookback)
            if event == "trigger" and dests
            else []
        )
        rows = [outbox_row(incident, event, dest, approvals=approvals, changes=changes) for dest in dests]
        if event != "trigger":
            return rows
        quiet = routed.quiet_hours
        until = quiet.until(now) if quiet is not None and incident.severity is not Severity.CRITICAL else None
        if until is not None and rows:
            assert quiet is not None
            self._quiet.append((rows, until, f"quiet hours until {quiet.local(until)}"))
            rows = []
        self._escalate(incident, routed, dests, start=until or now)
        return rows

    def _escalate(
        self, incident: IncidentRecord, routed: RouteResult, dests: list[Destination], *, start: datetime
    ) -> None:
        """The page's escalation policy (its route's ``escalation``), laid out in time from ``start``
        (now, or when quiet hours end) as held rows on the escalation channel — or, in shadow mode,
        recorded as what would have happened."""
        # The first live route's policy; a shadow route's only when no live route names one.
        name = routed.escalation or next((m.escalation for m in routed.matches if m.escalation), None)
        policy = self._config.oncall.policy(name) if name else None
        if policy is None:
            return
        now = self._now
        steps = plan(policy, start)
        if self._config.mode == "shadow" or routed.escalation is None:
            detail: decisions.EscalateDecision = {
                "policy": policy.name,
                "steps": [
                    {"number": s.number, "target": s.target, "after_seconds": (s.due - now).total_seconds()}
                    for s in steps
                ],
            }
            decisions.record(
                self._conn,
                incident_id=incident.id,
                kind="escalate",
                now=now,
                summary=f"would escalate by {policy.name}: {describe_plan(steps, now)}",
                detail=detail,
            )
            return
        pages = [d.target for d in dests if d.channel == "slack"]
        page = Notification.build(incident, "trigger", Destination(Channel.ESCALATION, ""))
        self._escalations += policy_rows(page, policy, start, pages)

    def _record_paged_before(self, incident: IncidentRecord, stats: IngestStats) -> None:
        """Muted with the reason, no automation; routed, so that its resolve reaches the page."""
        labels = {**incident.labels, "severity": incident.severity.value}
        dests, shadow = route_destinations(self._config, labels, incident.severity, self._enabled)
        stats.suppressed["paged_before"] += 1
        self._writer.set_outcome(incident, destinations=stored_destinations(dests, shadow), suppressed_by=PAGED_BEFORE)
        log.info(
            "alert_suppressed", incident_id=incident.id, fingerprint=incident.fingerprint, suppressed_by=PAGED_BEFORE
        )

    def _request_automations(
        self, incident: IncidentRecord, labels: Mapping[str, str], stats: IngestStats
    ) -> list[dict[str, Any]]:
        """Store the runs the matching automations ask for; the approval buttons of pending ones."""
        approvals: list[dict[str, Any]] = []
        if not self._config.automations:
            return approvals
        for request in request_runs(
            self._conn,
            self._config.automations,
            labels,
            incident.labels,
            incident_id=incident.id,
            now=self._now,
            shadow=self._config.mode == "shadow",
        ):
            if request.status == "queued":
                stats.automation_runs.append(request.run_id)
            elif request.status == "pending":
                approvals.append({"run_id": request.run_id, "runbook": request.runbook})
        return approvals


def _record_change(conn: Connection, alert: Alert, now: datetime) -> None:
    """A deployment / config-change event that came as an alert joins the change timeline too."""
    name = alert.alertname
    kind = "deployment" if name.endswith(("RolledOut", "Deployed")) else "config_change"
    sources = ((alert.generator_url, "source"), (alert.annotations.get("runbook_url", ""), "runbook"))
    links = [{"href": url, "text": text} for url, text in sources if url]
    change_events.record(
        conn,
        source="alertmanager",
        now=now,
        values={
            "event_id": f"alert:{alert.fingerprint}:{alert.starts_at.isoformat()}",
            "kind": kind,
            "service": alert.service,
            "namespace": alert.namespace,
            "version": alert.labels.get("version") or alert.annotations.get("version", ""),
            "actor": alert.labels.get("actor") or "alertmanager",
            "description": alert.annotations.get("summary") or alert.annotations.get("description") or name,
            "links": links,
            "timestamp": alert.starts_at,
        },
    )
