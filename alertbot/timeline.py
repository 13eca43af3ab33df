"""An incident's timeline: its alerts, notifications, the changes around it, runbook runs, acks and
what alertbot decided (suppressions, held resolves), in the order they happened.

For on-call mid-incident ("what happened, what changed, who did what?") and for the write-up after.
``GET /api/v1/incidents/{id}/timeline`` and ``/alertbot timeline ID`` show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from sqlalchemy.engine import Connection

from alertbot.domain.changes import correlate
from alertbot.store import change_events, incident_notes, incidents, outbox, runbook_runs


class EntryJSON(TypedDict):
    at: str  # ISO 8601
    kind: str
    text: str
    incident_id: int | None


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # alert | notification | change | runbook | ack | note
    text: str
    incident_id: int | None = None

    def to_json(self) -> EntryJSON:
        return {"at": self.at.isoformat(), "kind": self.kind, "text": self.text, "incident_id": self.incident_id}


def incident_timeline(conn: Connection, incident_id: int, *, lookback: timedelta, now: datetime) -> list[Entry] | None:
    """The timeline of the chain ``incident_id`` belongs to; None when there is no such incident."""
    chain = incidents.chain(conn, incident_id)
    if not chain:
        return None
    lead = chain[0]
    ids = [e.id for e in chain]
    entries: list[Entry] = []
    for episode in chain:
        entries.append(
            Entry(
                episode.starts_at,
                "alert",
                f"{episode.alertname} {episode.service} firing: {episode.severity.value} — {episode.reason}".strip(),
                episode.id,
            )
        )
        if episode.acked_at is not None:
            entries.append(Entry(episode.acked_at, "ack", f"acknowledged by {episode.acked_by}", episode.id))
        if episode.status == "resolved":
            by = f" by {episode.resolved_by}" if episode.resolved_by else ""
            entries.append(
                Entry(
                    episode.ends_at or episode.resolved_at or episode.updated_at,
                    "alert",
                    f"{episode.alertname} {episode.service} resolved{by}",
                    episode.id,
                )
            )
    for row in outbox.for_incident(conn, lead.id):
        entries.append(_notification(row, lead.id))
    entries += [Entry(n.at, "note", n.text, n.incident_id) for n in incident_notes.for_incidents(conn, ids)]
    for run in runbook_runs.for_incidents(conn, ids):
        entries.append(
            Entry(
                run.finished_at or run.started_at, "runbook", f"run {run.id} {run.runbook}: {run.status} — {run.result}"
            )
        )
    entries += _changes(conn, chain, lookback=lookback, now=now)
    order = {"change": 0, "alert": 1, "note": 2, "notification": 3, "runbook": 4, "ack": 5}
    return sorted(entries, key=lambda e: (e.at, order.get(e.kind, 9)))


def _notification(row: outbox.Delivery, incident_id: int) -> Entry:
    where = f"{row['channel']}:{row['target']}" if row["target"] else row["channel"]
    what = f"{row['event']} to {where}"
    if row["status"] == "delivered" and row["delivered_at"]:  # (set together)
        return Entry(datetime.fromisoformat(row["delivered_at"]), "notification", f"{what} delivered", incident_id)
    created = datetime.fromisoformat(row["created_at"])
    if row["held_until"]:
        return Entry(created, "notification", f"{what} held until {row['held_until']}: {row['hold']}", incident_id)
    if row["status"] == "pending":
        return Entry(created, "notification", f"{what} pending (attempt {row['attempts'] + 1})", incident_id)
    return Entry(created, "notification", f"{what} {row['status']}: {row['last_error']}", incident_id)


def _changes(
    conn: Connection, chain: list[incidents.IncidentRecord], *, lookback: timedelta, now: datetime
) -> list[Entry]:
    """Changes to the service from ``lookback`` before the first firing until the last one ended."""
    lead = chain[0]
    if not lead.service:
        return []
    last = chain[-1]
    until = (last.ends_at or last.resolved_at or now) if last.status == "resolved" else now
    recorded = change_events.around(conn, services=[lead.service], since=lead.starts_at - lookback, until=until)
    window = until - lead.starts_at + lookback
    kept = correlate(recorded, service=lead.service, namespace=lead.namespace, started=until, lookback=window)
    return [Entry(c.timestamp, "change", c.what() + (f" (by {c.actor})" if c.actor else "")) for c in kept]
