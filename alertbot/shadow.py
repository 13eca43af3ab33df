"""Shadow mode: decide everything, send and change nothing, and record what would have happened.

Enabled globally (``mode: shadow``), per route (``mode: shadow`` on a route node) or per automation
(``mode: shadow``): for trying a new policy on live traffic. Read the record with
``GET /api/v1/decisions`` or ``alertbot decisions``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from alertbot.notify.base import Destination, Event
from alertbot.store import decisions
from alertbot.store.incidents import IncidentRecord


def stored_destinations(live: list[Destination], shadow: list[Destination]) -> list[dict[str, Any]]:
    # (plain dicts: what ingest hands the store today)
    return [{**d.to_json()} for d in live] + [{**d.to_json(), "shadow": True} for d in shadow]


def record_shadow(
    conn: Connection, incident: IncidentRecord, event: Event, shadow: list[Destination], now: datetime
) -> None:
    """Shadow mode: what would have been sent, recorded instead of sent."""
    verb = {"trigger": "notify", "resolve": "resolve on", "acknowledge": "acknowledge on", "update": "update on"}[event]
    for dest in shadow:
        where = f"{dest.channel}:{dest.target}" if dest.target else dest.channel
        stored = dest.to_json()
        detail: decisions.NotifyDecision = {
            "event": event,
            "channel": stored["channel"],
            "target": stored["target"],
            "stands_in_for": stored["stands_in_for"],
            "severity": incident.severity.value,
        }
        decisions.record(
            conn,
            incident_id=incident.id,
            kind="notify",
            now=now,
            summary=f"would {verb} {where} ({incident.alertname} {incident.service})".strip(),
            detail=detail,
        )
