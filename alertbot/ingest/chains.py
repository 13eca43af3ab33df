"""Chains of episodes: a re-fire that continues an earlier incident (flapping, a held resolve)
instead of paging again, and the resolve of an episode under its chain's identity."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import structlog

from alertbot.domain.flapping import FlapPolicy, FlapState, ResolveHold, continuation_reason, flap_state, resolve_hold
from alertbot.domain.outbox import OutboxIntent
from alertbot.domain.parse import format_duration
from alertbot.domain.route import route
from alertbot.ingest.routing import outbox_row
from alertbot.ingest.view import BatchView
from alertbot.ingest.writer import BatchWriter
from alertbot.notify.base import UPDATABLE_CHANNELS, live_and_shadow
from alertbot.settings import Config
from alertbot.shadow import record_shadow
from alertbot.store import incident_notes, incidents, outbox
from alertbot.store.incidents import IncidentRecord

log = structlog.get_logger("alertbot.pipeline")


class Chains:
    """Statements go through ``writer.conn``: they see everything the batch decided before."""

    def __init__(self, config: Config, view: BatchView, writer: BatchWriter, now: datetime) -> None:
        self._config = config
        self._view, self._writer, self._now = view, writer, now

    def _flap_policy(self) -> FlapPolicy | None:
        return self._config.flapping.policy() if self._config.flapping is not None else None

    def continue_chain(self, incident: IncidentRecord) -> list[OutboxIntent] | None:
        """A re-fire that continues an earlier incident instead of paging: the rows it sends (flap
        updates of the earlier message), or None when it is an incident of its own."""
        episodes = self._view.episodes
        previous = episodes.previous(incident)
        if previous is None:
            return None
        conn = self._writer.conn
        lead = episodes.lead_of(conn, previous)
        was_held = (
            previous.status == "resolved"
            and outbox.cancel_held(conn, lead.id, why=f"cancelled: re-fired (incident {incident.id})") > 0
        )
        flap = flap_state(episodes.of(incident.fingerprint), self._flap_policy(), self._now)
        why = continuation_reason(flap, resolve_was_held=was_held, lead_id=lead.id)
        if why is None:
            return None
        incidents.continue_chain(conn, incident.id, lead_id=lead.id, why=why, now=self._now)
        self._view.apply(dataclasses.replace(incident, lead_id=lead.id, suppressed_by=why))
        incident_notes.add(conn, [lead.id, incident.id], kind="continued", text=why, now=self._now)
        log.info("alert_continues_incident", incident_id=incident.id, lead_id=lead.id, why=why)
        return self._flap_updates(lead, flap, firing=True) if flap.flapping else []

    def resolve(self, incident: IncidentRecord, queued: list[OutboxIntent]) -> tuple[list[OutboxIntent], ResolveHold]:
        """The resolve rows of an episode (under its chain's identity) and how long they are held;
        while flapping, the message's flap update goes into ``queued``."""
        conn, now = self._writer.conn, self._now
        episodes = self._view.episodes
        lead = episodes.lead_of(conn, incident)
        view = incident.under(lead)
        flap = flap_state(episodes.of(incident.fingerprint), self._flap_policy(), now)
        delay = route(self._config.routes, {**lead.labels, "severity": lead.severity.value}).resolve_delay
        hold = resolve_hold(flap, delay)
        live, shadow = live_and_shadow(lead.destinations)
        record_shadow(conn, view, "resolve", shadow, now)
        if flap.flapping:
            queued += self._flap_updates(lead, flap, firing=False)
        if hold.held and live:
            incident_notes.add(
                conn,
                [lead.id, incident.id],
                kind="held",
                now=now,
                text=f"resolve held for {format_duration(hold.delay)}: {hold.reason}",
            )
        return [outbox_row(view, "resolve", dest) for dest in live], hold

    def _flap_updates(self, lead: IncidentRecord, flap: FlapState, *, firing: bool) -> list[OutboxIntent]:
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
        rows = []
        for dest in live:
            if dest.channel in UPDATABLE_CHANNELS:
                row = outbox_row(dataclasses.replace(lead, status="firing"), "update", dest, note=note)
                if not outbox.coalesce_pending(self._writer.conn, row):
                    rows.append(row)
        return rows
