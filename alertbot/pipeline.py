"""The pipeline: the one place where domain decisions meet the store and the outbox.

    accept(payload) ─▶ group commit: one transaction for every payload waiting ─▶ 200
        per alert: dedup by (fingerprint, startsAt) ─▶ classify ─▶ silence / inhibit ─▶ route
        ─▶ outbox rows (same transaction) ─▶ wake the dispatcher

An alert is acknowledged to Alertmanager only after the transaction holding it and its
notifications has committed, so a crash after a 200 loses nothing. Concurrent requests share one
commit (group commit); each is answered when that commit is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from alertbot import incident_actions
from alertbot.domain.changes import correlate
from alertbot.domain.changes import describe as describe_change
from alertbot.domain.classify import classify
from alertbot.domain.flapping import (
    Episode,
    FlapPolicy,
    FlapState,
    ResolveHold,
    continuation_reason,
    flap_state,
    resolve_hold,
)
from alertbot.domain.inhibit import InhibitRule, inhibiting_rule
from alertbot.domain.matchers import all_match
from alertbot.domain.models import Alert, AlertStatus, Classification, Severity, WebhookPayload, matching_labels
from alertbot.domain.parse import format_duration
from alertbot.domain.route import RouteResult, route
from alertbot.domain.silence import Silence, find_silence
from alertbot.errors import AlertbotError, StoreUnavailable
from alertbot.notify.base import (
    UPDATABLE_CHANNELS,
    CorrelatedChange,
    Destination,
    Event,
    Notification,
    StormSummary,
    destinations,
    live_and_shadow,
)
from alertbot.observability import Metrics
from alertbot.runbooks.automations import request_runs
from alertbot.settings import Config, StormConfig
from alertbot.shadow import record_shadow, stored_destinations
from alertbot.store import change_events, heartbeats, incident_notes, incidents, outbox
from alertbot.store import silences as silence_repo
from alertbot.store import storms as storm_repo
from alertbot.store.engine import Store
from alertbot.store.incidents import IncidentRecord

log = structlog.get_logger("alertbot.pipeline")

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RoutingPlan:
    """Where one alert would go, and why: used by the explaining CLI commands."""

    classification: Classification
    labels: dict[str, str]
    route: RouteResult
    destinations: list[Destination]  # sent to
    shadow: list[Destination]  # only recorded (shadow mode)


def plan_routing(config: Config, alert: Alert, enabled_channels: Iterable[str]) -> RoutingPlan:
    classification = classify(alert, config.classification, config.thresholds)
    labels = matching_labels(alert, classification)
    result = route(config.routes, labels)
    live, shadow = split_destinations(config, result, classification.severity, enabled_channels)
    return RoutingPlan(classification, labels, result, live, shadow)


def split_destinations(
    config: Config, result: RouteResult, severity: Severity, enabled_channels: Iterable[str]
) -> tuple[list[Destination], list[Destination]]:
    """Where an alert goes (live) and where it would go (shadow: recorded, not sent)."""
    enabled = list(enabled_channels)
    everything_shadow = config.mode == "shadow"
    live = () if everything_shadow else result.live_receivers
    shadow = result.receivers if everything_shadow else result.shadow_receivers
    channels = config.slack.channels
    return (
        destinations(live, severity, channels, enabled),
        destinations(shadow, severity, channels, enabled) if shadow else [],
    )


class Handoff(Protocol):
    """The local dispatcher, as the pipeline sees it: rows of new incidents are inserted already
    leased to it and handed over after commit, so the first send needs no claim round-trip."""

    owner: str
    lease: timedelta

    def hand_off(self, rows: list[outbox.OutboxRow]) -> None: ...

    def wake(self) -> None: ...


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


@dataclass
class _Pending:
    payload: WebhookPayload
    done: asyncio.Future[IngestStats]


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        enabled_channels: Iterable[str],
        metrics: Metrics,
        clock: Clock,
        dispatcher: Handoff,
        run_automations: Callable[[list[int]], None] | None = None,
        max_batch: int = 128,
    ) -> None:
        self._config = config
        self._store = store
        self._enabled = frozenset(enabled_channels)
        self._metrics = metrics
        self._clock = clock
        self._dispatcher = dispatcher
        self._run_automations = run_automations
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="pipeline-writer")

    async def stop(self) -> None:
        """Commit everything already accepted into the queue, then stop."""
        if self._writer is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def accept(self, payload: WebhookPayload) -> IngestStats:
        """Returns once the payload is committed; raises StoreUnavailable if it could not be."""
        if self._writer is None or self._writer.done():
            raise StoreUnavailable("alertbot is shutting down")
        done: asyncio.Future[IngestStats] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(payload, done))
        return await done

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit_batch(batch)
            if stopping:
                return

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        payloads = [p.payload for p in batch]
        try:
            try:
                results = await self._commit(payloads)
            except IntegrityError:
                # Another replica (sharing a PostgreSQL store) committed one of these alerts first:
                # this transaction was rolled back whole; done again, it finds that alert and
                # de-duplicates it.
                log.info("ingest_conflict_retried", payloads=len(batch))
                results = await self._commit(payloads)
        except Exception as exc:
            await self._fail_batch(batch, exc)
            return
        self._settle(batch, results)

    async def _fail_batch(self, batch: list[_Pending], exc: Exception) -> None:
        if len(batch) > 1 and not isinstance(exc, StoreUnavailable):
            # One bad payload must not fail the others that shared its commit.
            for item in batch:
                await self._commit_batch([item])
            return
        if not isinstance(exc, AlertbotError):
            log.exception("ingest_failed")
        for item in batch:
            if not item.done.done():
                item.done.set_exception(exc)

    def _settle(self, batch: list[_Pending], results: list[IngestStats]) -> None:
        """Answer each request of a committed batch, and hand its notifications to the dispatcher."""
        claimable = False
        for item, stats in zip(batch, results, strict=True):
            self._record_metrics(stats)
            if stats.handed_off:
                self._dispatcher.hand_off(stats.handed_off)
            if stats.automation_runs and self._run_automations is not None:
                self._run_automations(stats.automation_runs)
            claimable = claimable or stats.notifications > len(stats.handed_off)
            if not item.done.done():
                item.done.set_result(stats)
        if claimable:
            self._dispatcher.wake()

    async def _commit(self, payloads: list[WebhookPayload]) -> list[IngestStats]:
        """One transaction, on the store's writer thread, for every payload of the batch."""
        return await self._store.write(self._ingest_all, payloads, self._clock())

    def _ingest_all(self, conn: Connection, payloads: list[WebhookPayload], now: datetime) -> list[IngestStats]:
        batch = _Batch(
            conn,
            payloads,
            now,
            self._config.correlation.lookback,
            self._config.storm,
            owner=self._dispatcher.owner,
            lease_until=now + self._dispatcher.lease,
        )
        batch.inserted_up_front(self._insert_new(conn, payloads, batch.chains.known, now))
        results = [self._ingest(conn, payload, now, batch) for payload in payloads]
        batch.flush()
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
                if key in known or key in new or self._is_heartbeat(alert):
                    continue
                new[key] = (
                    alert,
                    classify(alert, self._config.classification, self._config.thresholds),
                    payload.group_key,
                )
        return incidents.insert_many(conn, list(new.values()), now)

    def _is_heartbeat(self, alert: Alert) -> bool:
        return self._config.heartbeat is not None and alert.alertname == self._config.heartbeat.alertname

    def _record_metrics(self, stats: IngestStats) -> None:
        self._metrics.alerts_received.inc(stats.alerts)
        for severity, count in stats.classified.items():
            self._metrics.alerts_classified.labels(severity.value).inc(count)
        for reason, count in stats.suppressed.items():
            self._metrics.alerts_suppressed.labels(reason).inc(count)

    def _ingest(self, conn: Connection, payload: WebhookPayload, now: datetime, batch: _Batch) -> IngestStats:  # noqa: C901, PLR0912
        stats = IngestStats(alerts=len(payload.alerts))
        chains = batch.chains
        known = chains.known
        decide: list[tuple[IncidentRecord, Event]] = []
        resolved: list[IncidentRecord] = []
        rows: list[dict[str, Any]] = []  # sent after a claim, in order behind earlier rows

        for alert in payload.alerts:
            if self._is_heartbeat(alert):
                # The dead man's switch: recorded, never notified (but it resolves a "broken" page).
                batch.flush()
                stats.notifications += self._heartbeat(conn, alert, now)
                continue
            key = (alert.fingerprint, alert.starts_at)
            incident = known.get(key)
            if incident is None:
                incident = batch.arrive(key)  # inserted up front for this batch; this is its first arrival
                if alert.status is AlertStatus.FIRING and incident.reason.startswith("event:"):
                    _record_change(conn, alert, now)
                    batch.changes_recorded()
                stats.classified[incident.severity] += 1
                if alert.status is AlertStatus.FIRING:
                    continued = self._continue_chain(conn, incident, batch, now)
                    if continued is not None:
                        stats.suppressed["continued"] += 1
                        rows += continued
                        continue
                decide.append((incident, "trigger" if alert.status is AlertStatus.FIRING else "resolve"))
            elif alert.status is AlertStatus.FIRING:
                stats.duplicates += 1
                if incident.status == "firing":
                    incidents.refresh(conn, incident.id, alert, now)
                    if (
                        incident.suppressed_by
                        and incident.lead_id is None
                        and storm_repo.storm_id_of(incident.suppressed_by) is None
                    ):
                        decide.append((incident, "trigger"))  # a silence may have ended since
                # else: a late copy of a firing alert that has resolved since; nothing to do.
            elif incident.status == "firing":
                if not incidents.resolve(conn, incident.id, alert, now):
                    stats.duplicates += 1  # resolved meanwhile by another replica's copy: notify nothing
                    continue
                updated = dataclasses.replace(
                    incident,
                    status="resolved",
                    ends_at=alert.ends_at or now,
                    annotations=dict(alert.annotations),
                    resolved_at=now,
                )
                chains.add(updated)
                resolved.append(updated)
            else:
                stats.duplicates += 1

        # A new alert's own trigger: nothing can be ahead of it, so it is handed to the local sender
        # at once. A re-fire's is queued behind whatever its previous episode still has to send.
        direct: list[dict[str, Any]] = []
        if decide:
            for incident, event in decide:
                decided, own = self._decide(conn, incident, event, payload, batch=batch, stats=stats, now=now)
                first = chains.previous(incident) is None
                (direct if own and event == "trigger" and first else rows).extend(decided)
        storms_touched: set[int] = set()
        held: list[tuple[list[dict[str, Any]], datetime, str]] = []
        for incident in resolved:
            storm_id = storm_repo.storm_id_of(incident.suppressed_by)
            if storm_id is not None:
                storms_touched.add(storm_id)
            resolve_rows, hold = self._resolve(conn, incident, batch, rows, now)
            if hold.held and resolve_rows:
                held.append((resolve_rows, now + hold.delay, hold.reason))
            else:
                rows += resolve_rows
        for storm_id in sorted(storms_touched):
            rows.extend(self._end_storm_if_quiet(conn, storm_id, batch, now))
        batch.enqueue(rows)
        for held_rows, until, why in held:  # after any update of the same message queued above
            batch.enqueue(held_rows, hold=(until, why))
        batch.enqueue(direct, hand_to=stats)
        stats.notifications += len(rows) + len(direct) + sum(len(r) for r, _, _ in held)
        return stats

    def _flap_policy(self) -> FlapPolicy | None:
        return self._config.flapping.policy() if self._config.flapping is not None else None

    def _continue_chain(
        self, conn: Connection, incident: IncidentRecord, batch: _Batch, now: datetime
    ) -> list[dict[str, Any]] | None:
        """A re-fire that continues an earlier incident instead of paging: the rows it sends (flap
        updates of the earlier message), or None when it is an incident of its own."""
        chains = batch.chains
        previous = chains.previous(incident)
        if previous is None:
            return None
        lead = chains.lead_of(conn, previous)
        batch.flush()  # the held rows it may cancel can be this batch's
        was_held = (
            previous.status == "resolved"
            and outbox.cancel_held(conn, lead.id, why=f"cancelled: re-fired (incident {incident.id})") > 0
        )
        flap = flap_state(chains.episodes(incident.fingerprint), self._flap_policy(), now)
        why = continuation_reason(flap, resolve_was_held=was_held, lead_id=lead.id)
        if why is None:
            return None
        incidents.continue_chain(conn, incident.id, lead_id=lead.id, why=why, now=now)
        chains.add(dataclasses.replace(incident, lead_id=lead.id, suppressed_by=why))
        incident_notes.add(conn, [lead.id, incident.id], kind="continued", text=why, now=now)
        log.info("alert_continues_incident", incident_id=incident.id, lead_id=lead.id, why=why)
        return self._flap_updates(conn, batch, lead, flap, firing=True) if flap.flapping else []

    def _resolve(
        self, conn: Connection, incident: IncidentRecord, batch: _Batch, queued: list[dict[str, Any]], now: datetime
    ) -> tuple[list[dict[str, Any]], ResolveHold]:
        """The resolve rows of an episode (under its chain's identity) and how long they are held;
        while flapping, the message's flap update goes into ``queued``."""
        chains = batch.chains
        lead = chains.lead_of(conn, incident)
        view = incident.under(lead)
        flap = flap_state(chains.episodes(incident.fingerprint), self._flap_policy(), now)
        delay = route(self._config.routes, {**lead.labels, "severity": lead.severity.value}).resolve_delay
        hold = resolve_hold(flap, delay)
        live, shadow = live_and_shadow(lead.destinations)
        record_shadow(conn, view, "resolve", shadow, now)
        if flap.flapping:
            queued += self._flap_updates(conn, batch, lead, flap, firing=False)
        if hold.held and live:
            incident_notes.add(
                conn,
                [lead.id, incident.id],
                kind="held",
                now=now,
                text=f"resolve held for {format_duration(hold.delay)}: {hold.reason}",
            )
        return [_row(view, "resolve", dest) for dest in live], hold

    def _flap_updates(
        self, conn: Connection, batch: _Batch, lead: IncidentRecord, flap: FlapState, *, firing: bool
    ) -> list[dict[str, Any]]:
        """The lead's messages (Slack, console) updated in place with the flap count; no page."""
        assert flap.policy is not None
        now_state = (
            "firing now"
            if firing
            else (f"resolved now; the resolve waits until quiet for {format_duration(flap.policy.quiet)}")
        )
        note = (
            f"Flapping: {flap.transitions} firing↔resolved transitions in {format_duration(flap.policy.window)} "
            f"({now_state}). PagerDuty is not re-triggered."
        )
        live, _ = live_and_shadow(lead.destinations)
        batch.flush()  # an update still pending may be this batch's
        rows = []
        for dest in live:
            if dest.channel in UPDATABLE_CHANNELS:
                row = _row(dataclasses.replace(lead, status="firing"), "update", dest, note=note)
                if not outbox.coalesce_pending(conn, row):
                    rows.append(row)
        return rows

    def _destinations(
        self, labels: Mapping[str, str], severity: Severity
    ) -> tuple[list[Destination], list[Destination]]:
        return split_destinations(self._config, route(self._config.routes, labels), severity, self._enabled)

    def _heartbeat(self, conn: Connection, alert: Alert, now: datetime) -> int:
        """Record a Watchdog; returns how many notifications resolving a "pipeline broken" page it queued."""
        assert self._config.heartbeat is not None
        if alert.status is not AlertStatus.FIRING:
            return 0
        broken = heartbeats.seen(conn, self._config.heartbeat.alertname, now)
        if broken is None:
            return 0
        log.info("heartbeat_restored", incident_id=broken)
        resolved = incident_actions.resolve(
            conn, broken, by=f"{self._config.heartbeat.alertname} arrived again", now=now
        )
        return len(resolved.destinations) if resolved is not None else 0

    async def check_heartbeat(self) -> bool:
        """Page when the Watchdog is overdue (once, until it returns); True when it paged now."""
        if self._config.heartbeat is None:
            return False
        paged = await self._store.write(self._check_heartbeat, self._clock())
        if paged:
            self._dispatcher.wake()
        return paged

    def _check_heartbeat(self, conn: Connection, now: datetime) -> bool:
        policy = self._config.heartbeat
        assert policy is not None
        beat = heartbeats.get(conn, policy.alertname) or heartbeats.start_grace(conn, policy.alertname, now)
        if beat.incident_id is not None or now - beat.last_seen <= policy.max_interval:
            return False
        if not heartbeats.claim_page(conn, policy.alertname):
            return False  # another replica is paging for it
        silent_for = format_duration(now - beat.last_seen)
        alert = Alert.model_validate(
            {
                "status": "firing",
                "startsAt": now,
                "labels": {"alertname": "AlertingPipelineBroken", "service": "alertmanager", "severity": "critical"},
                "annotations": {
                    "summary": (
                        f"No {policy.alertname} from Alertmanager for {silent_for}: the alerting pipeline is broken"
                    ),
                    "description": f"alertbot expects Alertmanager's always-firing {policy.alertname} alert at least "
                    "every "
                    f"{format_duration(policy.max_interval)}. Alerts may not be reaching anyone: check "
                    "Alertmanager, Prometheus and the webhook to alertbot.",
                },
            }
        )
        classification = Classification(
            Severity.CRITICAL,
            f"dead man's switch: no {policy.alertname} for {silent_for} (max {format_duration(policy.max_interval)})",
        )
        incident = incidents.insert(conn, alert, classification, group_key="alertbot/heartbeat", now=now)
        dests, shadow = self._destinations(matching_labels(alert, classification), Severity.CRITICAL)
        incidents.set_outcome(
            conn, incident.id, destinations=stored_destinations(dests, shadow), suppressed_by=None, now=now
        )
        outbox.enqueue(conn, [_row(incident, "trigger", dest) for dest in dests], now)
        record_shadow(conn, incident, "trigger", shadow, now)
        heartbeats.paged(conn, policy.alertname, incident.id)
        log.error("heartbeat_missed", alertname=policy.alertname, silent_for=silent_for, incident_id=incident.id)
        return True

    def _storm_for(
        self,
        conn: Connection,
        incident: IncidentRecord,
        payload: WebhookPayload,
        dests: list[Destination],
        *,
        batch: _Batch,
        now: datetime,
    ) -> storm_repo.Storm | None:
        """The storm this new alert belongs to, joining or starting one; None when there is no storm."""
        policy = self._config.storm
        if policy is None or not incident.group_key:
            return None
        dest_json = [d.to_json() for d in dests]
        storm = batch.storm(incident.group_key)
        if storm is not None:
            storm = storm_repo.join(conn, storm, dest_json)
        elif batch.arrived(incident.group_key, incident.id) > policy.threshold:
            log.warning("alert_storm_started", group_key=incident.group_key, anchor_incident_id=incident.id)
            storm = storm_repo.start(
                conn,
                group_key=incident.group_key,
                group_labels=dict(payload.group_labels),
                anchor_incident_id=incident.id,
                destinations=dest_json,
                now=now,
            )
        if storm is not None:
            batch.storm_changed(storm)
        return storm

    def _storm_rows(
        self, conn: Connection, batch: _Batch, storm: storm_repo.Storm, event: Event, now: datetime
    ) -> list[dict[str, Any]]:
        """The storm's summary notifications; a summary not yet sent is updated instead of repeated."""
        batch.flush()  # its members' outcomes and pending summaries may be this batch's
        anchor = incidents.get(conn, storm.anchor_incident_id)
        assert anchor is not None
        firing = storm_repo.firing_members(conn, storm)
        summary = StormSummary(
            group_key=storm.group_key,
            group_labels=storm.group_labels,
            count=storm.count,
            firing=firing,
            sample=storm_repo.sample(conn, storm),
        )
        rows = []
        for dest in map(Destination.from_json, storm.destinations):
            row = _row(anchor, event, dest, storm=summary)
            if not outbox.coalesce_pending(conn, row):
                rows.append(row)
        return rows

    def _end_storm_if_quiet(
        self, conn: Connection, storm_id: int, batch: _Batch, now: datetime
    ) -> list[dict[str, Any]]:
        batch.flush()
        storm = storm_repo.get(conn, storm_id)
        if storm is None or storm_repo.firing_members(conn, storm) > 0:
            return []
        storm_repo.finish(conn, storm.id, now)
        batch.storm_ended(storm)
        log.info("alert_storm_ended", group_key=storm.group_key, alerts=storm.count)
        return self._storm_rows(conn, batch, storm, "resolve", now)

    def _inhibiting_rule(
        self, conn: Connection, incident: IncidentRecord, labels: dict[str, str], batch: _Batch
    ) -> InhibitRule | None:
        """The rule under which a firing alert inhibits this one. Sources are only read when a rule
        targets this alert, and only those sharing its service/namespace when the rule requires it."""
        for rule in self._config.inhibit_rules:
            if not all_match(rule.target_matchers, labels):
                continue
            namespace = incident.namespace if "namespace" in rule.equal else None
            if "service" in rule.equal and incident.service:
                sources = batch.firing_labels(incident.service, namespace)
            else:
                sources = batch.all_firing_labels(namespace)
            if inhibiting_rule([rule], labels, sources) is not None:
                return rule
        return None

    def _decide(  # noqa: C901
        self,
        conn: Connection,
        incident: IncidentRecord,
        event: Event,
        payload: WebhookPayload,
        *,
        batch: _Batch,
        stats: IngestStats,
        now: datetime,
    ) -> tuple[list[dict[str, Any]], bool]:
        """The notification rows for one alert, and whether they are its own (not a storm summary's)."""
        labels = {**incident.labels, "severity": incident.severity.value}
        suppressed_by: str | None = None
        silence = find_silence(batch.silences(), labels, now)
        approvals: list[dict[str, Any]] = []
        if silence is None and event == "trigger" and self._config.automations:
            for request in request_runs(
                conn,
                self._config.automations,
                labels,
                incident.labels,
                incident_id=incident.id,
                now=now,
                shadow=self._config.mode == "shadow",
            ):
                if request.status == "queued":
                    stats.automation_runs.append(request.run_id)
                elif request.status == "pending":
                    approvals.append({"run_id": request.run_id, "runbook": request.runbook})
        if silence is not None:
            suppressed_by = f"silence {silence.id} by {silence.created_by} until {silence.ends_at.isoformat()}"
            reason = "silenced"
        else:
            rule = self._inhibiting_rule(conn, incident, labels, batch) if event == "trigger" else None
            if rule is not None:
                suppressed_by = rule.describe()
                reason = "inhibited"
        if suppressed_by is not None:
            if suppressed_by != incident.suppressed_by:
                stats.suppressed[reason] += 1
                batch.set_outcome(incident, destinations=[], suppressed_by=suppressed_by)
                log.info(
                    "alert_suppressed",
                    incident_id=incident.id,
                    fingerprint=incident.fingerprint,
                    suppressed_by=suppressed_by,
                )
            return [], True
        dests, shadow = self._destinations(labels, incident.severity)
        record_shadow(conn, incident, event, shadow, now)
        storm = None
        if event == "trigger" and dests:
            storm = self._storm_for(conn, incident, payload, dests, batch=batch, now=now)
        if storm is not None:
            stats.suppressed["storm"] += 1
            batch.set_outcome(
                incident,
                destinations=[],
                suppressed_by=f"{storm.marker} summarised with {storm.count} alerts of its "
                f"group (incident {storm.anchor_incident_id})",
            )
            return self._storm_rows(conn, batch, storm, "trigger", now), False
        stored = stored_destinations(dests, shadow)
        if incident.suppressed_by is None:
            batch.set_outcome(incident, destinations=stored, suppressed_by=None)
        else:
            batch.flush()  # the suppression it lifts may be this batch's
            if not incidents.lift_suppression(
                conn, incident.id, was=incident.suppressed_by, destinations=stored, now=now
            ):
                return [], True  # another replica lifted it from its copy of the same alert, and notified
            batch.chains.add(dataclasses.replace(incident, destinations=stored, suppressed_by=None))
        changes = self._recent_changes(batch, incident) if event == "trigger" and dests else []
        return [_row(incident, event, dest, approvals=approvals, changes=changes) for dest in dests], True

    def _recent_changes(self, batch: _Batch, incident: IncidentRecord) -> list[CorrelatedChange]:
        """What changed on the service shortly before a warning or critical alert started."""
        if incident.severity is Severity.INFO or not incident.service:
            return []
        lookback = self._config.correlation.lookback
        recorded = batch.changes(incident.service)
        found = correlate(
            recorded,
            service=incident.service,
            namespace=incident.namespace,
            started=incident.starts_at,
            lookback=lookback,
        )
        return [
            CorrelatedChange(id=c.id, kind=c.kind, text=describe_change(c, incident.starts_at), target=c.target)
            for c in found
        ]


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


class _Batch:
    """One ingest transaction's reads and writes, each done once for the whole batch where it can be.

    Reads: the known episodes of its alerts, the active silences, the recent changes of its
    services, storm counts, inhibition sources. Writes: its new incidents are inserted up front, in
    one statement (``Pipeline._insert_new``); their outcomes and their outbox rows are buffered and
    written together by ``flush`` — at the end, or before anything that reads or changes them.

    Payloads still see each other as if each had its own transaction: the batch's view of an
    incident changes as each payload is ingested, and an alert inserted up front counts (as an
    inhibition source, say) only from its arrival on.
    """

    def __init__(
        self,
        conn: Connection,
        payloads: list[WebhookPayload],
        now: datetime,
        lookback: timedelta,
        storm: StormConfig | None,
        *,
        owner: str,
        lease_until: datetime,
    ) -> None:
        self._conn, self._now = conn, now
        alerts = [a for p in payloads for a in p.alerts]
        self.chains = _Chains(incidents.episodes(conn, [a.fingerprint for a in alerts]))
        # Storm bookkeeping, read before this batch inserts anything: its own new alerts are
        # counted as they arrive (``arrive``).
        # Only groups with a firing alert can start or join a storm (a batch of resolves reads nothing).
        groups = (
            sorted(
                {p.group_key for p in payloads if p.group_key and any(a.status is AlertStatus.FIRING for a in p.alerts)}
            )
            if storm is not None
            else []
        )
        self._storms = storm_repo.active_of(conn, groups)
        self._arrived = storm_repo.arrived_in(conn, groups, now - storm.window) if storm is not None else {}
        self._arrived_here: dict[str, list[int]] = {}  # group → this batch's new incidents so far
        self._services = {a.service for a in alerts if a.service}
        self._firing: dict[int, tuple[str, str, dict[str, str]]] | None = None
        starts = [a.starts_at for a in alerts] or [now]
        self._window = (min(starts) - lookback, max(starts))
        self._silences: list[Silence] | None = None
        self._changes: dict[str, list[change_events.ChangeEvent]] | None = None
        self._unarrived: dict[tuple[str, datetime], IncidentRecord] = {}  # inserted up front, not yet ingested
        self._owner, self._lease_until = owner, lease_until
        self._outcomes: list[tuple[int, list[dict[str, Any]], str | None]] = []
        self._queued: list[tuple[outbox.NewRow, IngestStats | None]] = []

    def inserted_up_front(self, records: list[IncidentRecord]) -> None:
        """The batch's new incidents, stored before its payloads are ingested: each counts from its
        first arrival (``arrive``) on."""
        self._unarrived = {record.key: record for record in records}

    def arrive(self, key: tuple[str, datetime]) -> IncidentRecord:
        """A new alert's first arrival in the batch: its incident joins the batch's view."""
        incident = self._unarrived.pop(key)
        self.chains.add(incident)
        self._arrived_here.setdefault(incident.group_key, []).append(incident.id)
        return incident

    def _not_arrived(self) -> set[int]:
        return {record.id for record in self._unarrived.values()}

    def set_outcome(
        self, incident: IncidentRecord, *, destinations: list[dict[str, Any]], suppressed_by: str | None
    ) -> None:
        """Where an incident went (or why not): in the batch's view at once (a later payload of the
        batch — its resolve, say — sees it), in the store at the next flush."""
        self._outcomes.append((incident.id, destinations, suppressed_by))
        self.chains.add(dataclasses.replace(incident, destinations=destinations, suppressed_by=suppressed_by))

    def enqueue(
        self,
        rows: list[dict[str, Any]],
        *,
        hold: tuple[datetime, str] | None = None,
        hand_to: IngestStats | None = None,
    ) -> None:
        """Queue notification rows (in this order) at the next flush: held, or leased to the local
        dispatcher and handed over through ``hand_to`` after commit."""
        self._queued += [(outbox.NewRow(row, hold=hold, leased=hand_to is not None), hand_to) for row in rows]

    def flush(self) -> None:
        """Write the buffered outcomes and outbox rows."""
        if self._outcomes:
            incidents.set_outcomes(self._conn, self._outcomes, self._now)
            self._outcomes = []
        if self._queued:
            queued, self._queued = self._queued, []
            leased = outbox.enqueue_all(
                self._conn, [new for new, _ in queued], self._now, owner=self._owner, until=self._lease_until
            )
            receivers = [stats for new, stats in queued if new.leased]
            for row, stats in zip(leased, receivers, strict=True):
                assert stats is not None
                stats.handed_off.append(row)

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

    def firing_labels(self, service: str, namespace: str | None) -> list[dict[str, str]]:
        """Inhibition sources of one service (and namespace): the firing incidents read once for the
        batch's services, brought up to date with what this batch inserted and resolved."""
        if self._firing is None:
            self._firing = incidents.firing_of_services(self._conn, self._services)
        not_arrived = self._not_arrived()
        found = {
            i: labels
            for i, (svc, ns, labels) in self._firing.items()
            if svc == service and namespace in (None, ns) and i not in not_arrived
        }
        for record in self.chains.known.values():
            if record.service == service and namespace in (None, record.namespace):
                if record.status == "firing":
                    found[record.id] = {**record.labels, "severity": record.severity.value}
                else:
                    found.pop(record.id, None)
        return list(found.values())

    def all_firing_labels(self, namespace: str | None) -> list[dict[str, str]]:
        """Inhibition sources of any service (in one namespace, or all), read from the store."""
        found = incidents.firing_labels(self._conn, namespace=namespace)
        not_arrived = self._not_arrived()
        return [labels for i, labels in found.items() if i not in not_arrived]

    def storm(self, group_key: str) -> storm_repo.Storm | None:
        return self._storms.get(group_key)

    def storm_changed(self, storm: storm_repo.Storm) -> None:
        self._storms[storm.group_key] = storm

    def storm_ended(self, storm: storm_repo.Storm) -> None:
        if (current := self._storms.get(storm.group_key)) is not None and current.id == storm.id:
            del self._storms[storm.group_key]

    def arrived(self, group_key: str, incident_id: int) -> int:
        """Alerts of the group that arrived within the storm window, up to and including this one."""
        here = self._arrived_here.get(group_key, ())
        return self._arrived.get(group_key, 0) + sum(1 for i in here if i <= incident_id)

    def changes_recorded(self) -> None:
        """A change was recorded in this transaction: read them again when next asked."""
        self._changes = None


class _Chains:
    """The episodes of the fingerprints in one payload (each alert firing is an episode), kept
    current as the payload is ingested: what flap counting and chain continuation look at."""

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

    def episodes(self, fingerprint: str) -> list[Episode]:
        return [
            Episode(r.starts_at, (r.ends_at or r.resolved_at) if r.status == "resolved" else None)
            for r in self._by_fingerprint.get(fingerprint, {}).values()
        ]


def _row(
    incident: IncidentRecord,
    event: Event,
    dest: Destination,
    *,
    storm: StormSummary | None = None,
    approvals: list[dict[str, Any]] | None = None,
    note: str = "",
    changes: list[CorrelatedChange] | None = None,
) -> dict[str, Any]:
    return {
        "incident_id": incident.id,
        "event": event,
        "channel": dest.channel,
        "target": dest.target,
        "payload": Notification.build(
            incident, event, dest, storm=storm, approvals=approvals, note=note, changes=changes
        ).model_dump(mode="json"),
    }


def enabled_channels(notifiers: Mapping[str, object]) -> list[str]:
    return [name for name in notifiers if name != "console"]
