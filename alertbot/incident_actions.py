"""What people do to incidents (from Slack or the API): acknowledge and resolve by hand.

Each is one transaction: the incident changes and the notifications that tell PagerDuty and Slack
go into the outbox together, to the destinations the trigger went to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from alertbot.notify.base import Event, Notification, live_and_shadow
from alertbot.shadow import record_shadow
from alertbot.store import incidents, outbox
from alertbot.store.incidents import IncidentRecord


def _notify(conn: Connection, incident: IncidentRecord, event: Event, actor: str, now: datetime) -> int:
    live, shadow = live_and_shadow(incident.destinations)
    rows: list[dict[str, Any]] = [
        {"incident_id": incident.id, "event": event, "channel": dest.channel, "target": dest.target,
         "payload": Notification.build(incident, event, dest, actor=actor).model_dump(mode="json")}
        for dest in live
    ]
    outbox.enqueue(conn, rows, now)
    record_shadow(conn, incident, event, shadow, now)
    return len(rows)


def acknowledge(conn: Connection, incident_id: int, *, by: str, now: datetime) -> IncidentRecord | None:
    incident = incidents.acknowledge(conn, incident_id, by=by, now=now)
    if incident is not None:
        _notify(conn, incident, "acknowledge", by, now)
    return incident


def resolve(conn: Connection, incident_id: int, *, by: str, now: datetime) -> IncidentRecord | None:
    incident = incidents.resolve_by_hand(conn, incident_id, by=by, now=now)
    if incident is not None:
        _notify(conn, incident, "resolve", by, now)
    return incident
