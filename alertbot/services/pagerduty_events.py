"""PagerDuty kept in step with alertbot: its v3 webhook events applied to alertbot's incidents.

Each event (``POST /webhook/pagerduty``, its signature checked by the web adapter) is matched to an
alertbot incident by the incident's ``incident_key`` — the dedup key alertbot paged with,
``alertbot/<fingerprint>/<startsAt in ms>`` — or, for a note (which names only PagerDuty's incident
id), by an earlier event of the same PagerDuty incident. Then:

- ``incident.acknowledged`` → acknowledged in alertbot, by "pagerduty:<who>": the Slack message says
  so, escalation stops. Not sent back to PagerDuty.
- ``incident.resolved`` → resolved in alertbot (Slack follows; not sent back to PagerDuty).
- ``incident.reassigned`` and ``incident.annotated`` → a line in the incident's timeline.

No loop: an event alertbot caused itself (its own ack or resolve, echoed by PagerDuty) finds the
incident already in that state and changes nothing; and nothing applied here is sent to PagerDuty.
Each event id is applied once, whichever replica receives a redelivery.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import Connection

from alertbot import incident_actions
from alertbot.domain.parse import describe_validation_error
from alertbot.errors import PayloadError
from alertbot.store import incident_notes
from alertbot.store.engine import Store
from alertbot.store.schema import incidents as incidents_table
from alertbot.store.schema import insert_ignore, pagerduty_events

APPLIED = frozenset({"incident.acknowledged", "incident.resolved", "incident.reassigned", "incident.annotated"})
DEDUP_KEY_RE = re.compile(r"^alertbot/([0-9a-f]{1,32})/(-?\d{1,16})$")
MAX_NOTE = 1000
MAX_ASSIGNEES = 10
HEX_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class _Reference(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field("", max_length=64)
    summary: str = ""  # cut where it is used


class _Data(BaseModel):
    """``event.data``: an ``incident``, or an ``incident_note`` naming its incident."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field("", max_length=64)
    type: str = Field("", max_length=64)
    incident_key: str | None = Field(None, max_length=255)
    assignees: list[_Reference] = Field(default_factory=list)  # the first MAX_ASSIGNEES are named
    incident: _Reference | None = None  # on an incident_note
    content: str = ""  # an incident_note's text


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=64)
    event_type: str = Field(max_length=64)
    occurred_at: datetime
    agent: _Reference | None = None
    data: _Data


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event: _Event


@dataclass(frozen=True)
class Applied:
    status: str  # applied | duplicate | unmatched | ignored
    incident_id: int | None = None
    detail: str = ""


def parse_event(data: Any) -> _Event:
    try:
        return _Envelope.model_validate(data).event
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc)) from None


def _incident_of_key(conn: Connection, key: str | None) -> int | None:
    match = DEDUP_KEY_RE.match(key or "")
    if match is None:
        return None
    fingerprint, millis = match.group(1), int(match.group(2))
    starts_at = datetime.fromtimestamp(millis / 1000, UTC)
    window = timedelta(milliseconds=1)  # the key keeps milliseconds; the store may keep microseconds
    row = conn.execute(
        sa.select(incidents_table.c.id)
        .where(
            incidents_table.c.fingerprint == fingerprint,
            incidents_table.c.starts_at >= starts_at,
            incidents_table.c.starts_at < starts_at + window,
        )
        .order_by(incidents_table.c.id)
        .limit(1)
    ).first()
    return int(row.id) if row is not None else None


def _incident_of_pd_id(conn: Connection, pd_incident_id: str) -> int | None:
    row = conn.execute(
        sa.select(pagerduty_events.c.incident_id)
        .join(incidents_table, incidents_table.c.id == pagerduty_events.c.incident_id)  # not one retention removed
        .where(pagerduty_events.c.pd_incident_id == pd_incident_id)
        .limit(1)
    ).first()
    return int(row.incident_id) if row is not None else None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _apply(conn: Connection, event: _Event, now: datetime) -> Applied:
    data = event.data
    pd_incident_id = data.incident.id if data.incident is not None else data.id
    if data.incident_key is not None:
        incident_id = _incident_of_key(conn, data.incident_key)
    else:
        incident_id = _incident_of_pd_id(conn, pd_incident_id)
    fresh = insert_ignore(
        conn,
        pagerduty_events,
        {
            "event_id": event.id,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at,
            "pd_incident_id": pd_incident_id,
            "incident_id": incident_id,
        },
        on=["event_id"],
    )
    if not fresh:
        return Applied("duplicate", incident_id)
    if event.event_type not in APPLIED:
        return Applied("ignored", incident_id, f"{event.event_type} is not applied")
    if incident_id is None:
        return Applied("unmatched", None, "no alertbot incident has this PagerDuty incident's key")
    who = _cut(event.agent.summary, 200) if event.agent is not None and event.agent.summary else "PagerDuty"
    by = f"pagerduty:{who}"
    if event.event_type == "incident.acknowledged":
        done = incident_actions.acknowledge(conn, incident_id, by=by, now=now, skip={"pagerduty"})
        return Applied("applied" if done else "unchanged", incident_id)
    if event.event_type == "incident.resolved":
        done = incident_actions.resolve(conn, incident_id, by=by, now=now, skip={"pagerduty"})
        return Applied("applied" if done else "unchanged", incident_id)
    if event.event_type == "incident.reassigned":
        names = ", ".join(_cut(a.summary or a.id, 200) for a in data.assignees[:MAX_ASSIGNEES]) or "nobody"
        if len(data.assignees) > MAX_ASSIGNEES:
            names += f" and {len(data.assignees) - MAX_ASSIGNEES} more"
        text = f"reassigned in PagerDuty to {names} (by {who})"
    else:
        content = _cut(data.content, MAX_NOTE)
        text = f"PagerDuty note by {who}: {content}"
    incident_notes.add(conn, [incident_id], kind="pagerduty", text=text, now=now)
    return Applied("applied", incident_id)


class PagerDutyEvents:
    def __init__(self, store: Store, *, clock: Callable[[], datetime], max_age: Callable[[], timedelta]) -> None:
        self._store = store
        self._clock = clock
        self._max_age = max_age

    async def apply(self, data: Any, on_enqueued: Callable[[], None]) -> Applied:
        """Apply one verified webhook body (``PayloadError`` when it is not a v3 event, or is stale)."""
        event = parse_event(data)
        now = self._clock()
        occurred = event.occurred_at if event.occurred_at.tzinfo else event.occurred_at.replace(tzinfo=UTC)
        if now - occurred > self._max_age():
            raise PayloadError(
                f"event.occurred_at {occurred.isoformat()} is older than pagerduty.webhook_max_age: refused as a replay"
            )
        applied = await self._store.write(_apply, event.model_copy(update={"occurred_at": occurred}), now)
        if applied.status == "applied":
            on_enqueued()
        return applied


def signature_ok(secrets: list[str], body: bytes, header: str | None) -> bool:
    """``X-PagerDuty-Signature`` holds one or more ``v1=<hex HMAC-SHA256 of the raw body>``, comma
    separated (several while PagerDuty rotates its secret); one matching any of ours is enough.
    Compared in constant time."""
    if not header:
        return False
    offered = [part.strip().removeprefix("v1=") for part in header.split(",") if part.strip().startswith("v1=")]
    offered = [sig for sig in offered if HEX_SHA256_RE.match(sig)]  # anything else cannot match (nor be compared)
    expected = [hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() for secret in secrets]
    return any(hmac.compare_digest(mine, theirs) for mine in expected for theirs in offered)
