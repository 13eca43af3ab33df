"""What people do to incidents (from Slack or the API): acknowledge and resolve by hand.

Each is one transaction: the incident changes and the notifications that tell PagerDuty and Slack
go into the outbox together, to the destinations the trigger went to.

An incident continued by re-fires (flapping, a held resolve) is one chain: a button on its Slack
message names the chain's first incident, and acts on the chain's newest episode; the notifications
go out under the first incident's identity (its PagerDuty dedup key, its Slack message).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.engine import Connection

from alertbot.domain.outbox import OutboxEvent, OutboxIntent
from alertbot.notify.base import Event, Notification, live_and_shadow
from alertbot.notify.escalation_plan import PlannedRow, ack_timeout_row
from alertbot.shadow import record_shadow
from alertbot.store import incident_notes, incidents, outbox
from alertbot.store.incidents import IncidentRecord


def _notify(
    conn: Connection,
    incident: IncidentRecord,
    event: Event,
    actor: str | None,
    now: datetime,
    *,
    skip: Collection[str] = (),
) -> int:
    lead = incidents.get(conn, incident.lead_id) if incident.lead_id is not None else None
    view = incident.under(lead) if lead is not None else incident
    live, shadow = live_and_shadow(view.destinations)
    live = [dest for dest in live if dest.channel not in skip]
    rows = [
        OutboxIntent(
            incident_id=view.id,
            event=OutboxEvent(event),
            channel=dest.channel,
            target=dest.target,
            payload=Notification.build(view, event, dest, actor=actor).model_dump(mode="json"),
        )
        for dest in live
    ]
    outbox.enqueue(conn, rows, now)
    record_shadow(conn, view, event, shadow, now)
    return len(rows)


def acknowledge(
    conn: Connection, incident_id: int, *, by: str, now: datetime, skip: Collection[str] = ()
) -> IncidentRecord | None:
    """``skip``: channels not told (an ack that came from PagerDuty is not sent back to it)."""
    current = incidents.current_of_chain(conn, incident_id)
    incident = incidents.acknowledge(conn, current.id, by=by, now=now) if current is not None else None
    if incident is not None:
        _notify(conn, incident, "acknowledge", by, now, skip=skip)
        ids = [incident.id, incident.chain_id]
        outbox.cancel_escalation(conn, ids, why=f"acknowledged by {by}")
        _time_the_ack(conn, ids, by=by, now=now)
    return incident


def _time_the_ack(conn: Connection, incident_ids: list[int], *, by: str, now: datetime) -> None:
    """An acknowledgement of an escalating incident lapses after its policy's ``ack_timeout``."""
    payload = outbox.latest_escalation(conn, incident_ids)
    try:
        page = Notification.model_validate(payload) if payload is not None else None
    except ValidationError:  # written by another release: no timeout, rather than no ack
        return
    if page is None or page.escalation is None:
        return
    planned = ack_timeout_row(page, page.escalation, by=by, now=now)
    if planned is not None:
        intent, due, why = planned
        outbox.enqueue(conn, [intent], now, hold=(due, why))


def acknowledgement_expired(
    conn: Connection, incident_id: int, *, by: str, now: datetime, note: str, then: Sequence[PlannedRow]
) -> IncidentRecord | None:
    """``by``'s acknowledgement lapsed with the incident still firing: it is no longer acknowledged
    (its Slack message gets its Ack button back), the timeline says why, and escalation starts over
    (``then``: the policy laid out again). None, changing nothing, if the acknowledgement no longer
    holds (resolved, or acknowledged anew)."""
    incident = incidents.unacknowledge(conn, incident_id, by=by, now=now)
    if incident is None:
        return None
    # PagerDuty keeps its own acknowledgement (and its own timeout, a setting of its service).
    _notify(conn, incident, "trigger", None, now, skip={"pagerduty"})
    incident_notes.add(conn, [incident.chain_id, incident.id], kind="ack_expired", now=now, text=note)
    for intent, due, why in then:
        outbox.enqueue(conn, [intent], now, hold=(due, why))
    return incident


def resolve(
    conn: Connection, incident_id: int, *, by: str, now: datetime, skip: Collection[str] = ()
) -> IncidentRecord | None:
    """Resolve the chain's firing episode — or, when its resolve is being held back (flapping,
    ``resolve_delay``), send that resolve now."""
    current = incidents.current_of_chain(conn, incident_id)
    if current is None:
        return None
    outbox.cancel_escalation(conn, [current.id, current.chain_id], why=f"resolved by {by}")
    incident = incidents.resolve_by_hand(conn, current.id, by=by, now=now)
    if incident is not None:
        # A page still waiting for quiet hours to end is not sent, nor its resolve.
        never_paged = outbox.cancel_waiting_pages(conn, [current.id, current.chain_id], why=f"resolved by {by}")
        _notify(conn, incident, "resolve", by, now, skip={*skip, *never_paged})
        return incident
    if outbox.release_held(conn, current.chain_id, now):
        incident_notes.add(
            conn,
            [current.chain_id, current.id],
            kind="released",
            now=now,
            text=f"held resolve sent now: resolved by hand by {by}",
        )
        return current
    return None
