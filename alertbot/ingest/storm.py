"""Storm control: past ``storm.threshold`` new alerts of one Alertmanager group within the window,
the rest of the group is summarised in one notification per channel.

Bookkeeping is per group per batch, not per alert: members join the storm in the batch view, and
the storm's count and its summary (one firing count, one sample, one pending outbox row updated)
are written once, when the batch ends — or earlier, before the storm may end in the same batch.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import structlog

from alertbot.domain.models import WebhookPayload
from alertbot.domain.outbox import OutboxIntent
from alertbot.ingest.routing import outbox_row
from alertbot.ingest.stages import StormStep, storm_step
from alertbot.ingest.view import BatchView
from alertbot.ingest.writer import BatchWriter
from alertbot.notify.base import Destination, Event, StormSummary
from alertbot.settings_sections import StormConfig
from alertbot.store import incidents, outbox
from alertbot.store import storms as storm_repo
from alertbot.store.incidents import IncidentRecord

log = structlog.get_logger("alertbot.pipeline")


class Storms:
    """Statements go through ``writer.conn``: they see everything the batch decided before."""

    def __init__(self, policy: StormConfig | None, view: BatchView, writer: BatchWriter, now: datetime) -> None:
        self._policy = policy
        self._view, self._writer, self._now = view, writer, now
        self._pending: dict[int, storm_repo.Storm] = {}  # storms whose summary this batch has not written
        self._joined: Counter[int] = Counter()  # members joined since the storm's count was last written
        self.queued = 0  # summary rows queued

    def join_or_start(
        self, incident: IncidentRecord, payload: WebhookPayload, dests: list[Destination]
    ) -> storm_repo.Storm | None:
        """The storm this new alert belongs to, joining or starting one; None when there is no storm."""
        storm = self._view.storm(incident.group_key)
        step = storm_step(
            self._policy,
            incident,
            storm is not None,
            lambda: self._view.arrivals_in_window(incident.group_key, incident.id),
        )
        if step is None:
            return None
        dest_json = [d.to_json() for d in dests]
        if step is StormStep.JOIN:
            assert storm is not None
            storm = storm_repo.joined(storm, dest_json)
            self._joined[storm.id] += 1
        else:
            log.warning("alert_storm_started", group_key=incident.group_key, anchor_incident_id=incident.id)
            storm = storm_repo.start(
                self._writer.conn,
                group_key=incident.group_key,
                group_labels=dict(payload.group_labels),
                anchor_incident_id=incident.id,
                destinations=dest_json,
                now=self._now,
            )
        self._view.storm_changed(storm)
        self._pending[storm.id] = storm
        return storm

    def write(self, storm_id: int | None = None) -> None:
        """Write the count and the summary of the storms joined since last written (or of one)."""
        ids = [storm_id] if storm_id is not None else list(self._pending)
        for sid in ids:
            storm = self._pending.pop(sid, None)
            if storm is None:
                continue
            if joined := self._joined.pop(sid, 0):
                storm_repo.add_members(self._writer.conn, storm, joined)
            self._queue(self._summary_rows(storm, "trigger"))

    def end_if_quiet(self, storm_id: int) -> list[OutboxIntent]:
        """A member resolved: the storm ends when none is firing; returns its summary's resolve rows."""
        self.write(storm_id)
        conn = self._writer.conn
        storm = storm_repo.get(conn, storm_id)
        if storm is None or storm_repo.any_firing(conn, storm):
            return []
        storm_repo.finish(conn, storm.id, self._now)
        self._view.storm_ended(storm)
        log.info("alert_storm_ended", group_key=storm.group_key, alerts=storm.count)
        return self._summary_rows(storm, "resolve")

    def _queue(self, rows: list[OutboxIntent]) -> None:
        self._writer.enqueue(rows)
        self.queued += len(rows)

    def _summary_rows(self, storm: storm_repo.Storm, event: Event) -> list[OutboxIntent]:
        """The storm's summary notifications; a summary not yet sent is updated instead of repeated."""
        conn = self._writer.conn  # its members' outcomes and pending summaries may be this batch's
        anchor = incidents.get(conn, storm.anchor_incident_id)
        assert anchor is not None
        summary = StormSummary(
            group_key=storm.group_key,
            group_labels=storm.group_labels,
            count=storm.count,
            firing=storm_repo.firing_count(conn, storm),
            sample=storm_repo.sample(conn, storm),
        )
        rows = []
        for dest in map(Destination.from_json, storm.destinations):
            row = outbox_row(anchor, event, dest, storm=summary)
            if not outbox.coalesce_pending(conn, row):
                rows.append(row)
        return rows
