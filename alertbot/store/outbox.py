"""The durable outbox: every notification is a row, written in the same transaction as the alert.

Delivery claims due rows under a lease (so a crashed sender's rows come back), keeps order per
incident and channel (a resolve never overtakes its trigger) and across the episodes of one alert
(they update one Slack message: a re-fire never overtakes the previous episode's resolve), and
records each outcome. Replicas sharing a PostgreSQL store claim with ``FOR UPDATE SKIP LOCKED``:
each row is sent by one of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.domain.jsontypes import JSONObject
from alertbot.domain.outbox import Channel, OutboxIntent
from alertbot.store.bulk import insert_ordered
from alertbot.store.schema import UTCDateTime, outbox

PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"


class Delivery(TypedDict):
    """One notification of an incident as the API and the timeline show it (times in ISO 8601)."""

    id: int
    event: str
    channel: str
    target: str
    status: str  # pending | delivered | failed | cancelled
    attempts: int
    last_error: str | None
    hold: str | None  # why a resolve waits
    created_at: str
    delivered_at: str | None
    held_until: str | None  # a held resolve: until when


@dataclass(frozen=True)
class OutboxRow:
    id: int
    incident_id: int
    event: str
    channel: str
    target: str
    payload: JSONObject  # the Notification as JSON (see OutboxIntent)
    attempts: int
    created_at: datetime


def enqueue(
    conn: Connection,
    rows: Sequence[OutboxIntent | Mapping[str, Any]],
    now: datetime,
    *,
    hold: tuple[datetime, str] | None = None,
) -> None:
    """Queue rows, due now — or, with ``hold=(until, why)``, held back until then (a resolve waiting
    to see whether the alert re-fires; ``cancel_held`` drops it, ``release_held`` sends it now)."""
    enqueue_all(conn, [NewRow(OutboxIntent.of(row), hold=hold) for row in rows], now, owner="", until=now)


@dataclass(frozen=True)
class NewRow:
    """A notification to queue: due now, held (``hold=(until, why)``), or ``leased`` to the local
    dispatcher, which is handed it after commit and sends it without a claim round-trip (if that
    process dies, the lease lapses and any dispatcher claims it as usual)."""

    row: OutboxIntent
    hold: tuple[datetime, str] | None = None
    leased: bool = False


def enqueue_all(
    conn: Connection, new: Sequence[NewRow], now: datetime, *, owner: str, until: datetime
) -> list[OutboxRow]:
    """Insert rows with one statement, their ids in the order given (the order they are delivered
    in, per incident and per alert). Returns the leased ones, for handing to ``owner``."""
    if not new:
        return []
    values = [
        {
            **n.row.values(),
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": n.hold[0] if n.hold else now,
            "hold": n.hold[1] if n.hold else None,
            "created_at": now,
            "lease_owner": owner if n.leased else None,
            "lease_until": until if n.leased else None,
        }
        for n in new
    ]
    ids = insert_ordered(conn, outbox, values)
    return [
        OutboxRow(
            id=row_id,
            incident_id=n.row.incident_id,
            event=n.row.event.value,
            channel=str(n.row.channel),
            target=n.row.target,
            payload=n.row.payload,
            attempts=0,
            created_at=now,
        )
        for row_id, n in zip(ids, new, strict=True)
        if n.leased
    ]


_ESCALATION = outbox.c.channel == Channel.ESCALATION.value


def cancel_held(conn: Connection, incident_id: int, *, why: str) -> int:
    """Cancel the held (not yet claimed) resolves of an incident; returns how many there were."""
    result = conn.execute(
        outbox.update()
        .where(
            outbox.c.incident_id == incident_id,
            outbox.c.status == PENDING,
            outbox.c.hold.is_not(None),
            outbox.c.lease_until.is_(None),
            ~_ESCALATION,
            outbox.c.event == "resolve",  # a page waiting for quiet hours stays
        )
        .values(status=CANCELLED, last_error=why)
    )
    return result.rowcount


def release_held(conn: Connection, incident_id: int, now: datetime) -> int:
    """Send an incident's held resolves now (someone resolved it by hand)."""
    result = conn.execute(
        outbox.update()
        .where(
            outbox.c.incident_id == incident_id,
            outbox.c.status == PENDING,
            outbox.c.hold.is_not(None),
            ~_ESCALATION,
            outbox.c.event == "resolve",  # a page waiting for quiet hours stays
        )
        .values(next_attempt_at=now, hold=None)
    )
    return result.rowcount


def cancel_waiting_pages(conn: Connection, incident_ids: Sequence[int], *, why: str) -> set[str]:
    """Cancel these incidents' triggers still held back (waiting for quiet hours to end) and not
    claimed; returns their channels (their resolves need not be sent either)."""
    ids = {"ids": list(incident_ids)}
    channels = set(conn.execute(_WAITING_PAGE_CHANNELS, ids).scalars())
    if channels:
        conn.execute(_CANCEL_WAITING_PAGES, {**ids, "why": why})
    return channels


def cancel_escalation(conn: Connection, incident_ids: Sequence[int], *, why: str) -> int:
    """Stop the escalation of these incidents: their steps not yet taken are cancelled with ``why``
    ("acknowledged by …", "resolved"). A step being sent right now (claimed) is left to its sender,
    which looks at the incident before it acts."""
    result = conn.execute(_CANCEL_ESCALATION, {"ids": list(incident_ids), "why": why})
    return result.rowcount


def latest_escalation(conn: Connection, incident_ids: Sequence[int]) -> JSONObject | None:
    """The payload of these incidents' newest escalation row that still has one, whatever its state:
    the policy they follow (its ``ack_timeout``), and where their pages are. (Rows delivered before
    schema v19's release dropped their payload.)"""
    payloads = conn.execute(
        sa.select(outbox.c.payload)
        .where(outbox.c.incident_id.in_(list(incident_ids)), _ESCALATION)
        .order_by(outbox.c.id.desc())
        .limit(20)
    ).scalars()
    return next((dict(p) for p in payloads if p and "escalation" in p), None)


def resolve_held(conn: Connection, incident_ids: Sequence[int]) -> bool:
    """Whether a resolve of these incidents is being held back (``resolve_delay``, flap damping)."""
    found = conn.execute(
        sa.select(outbox.c.id)
        .where(
            outbox.c.incident_id.in_(list(incident_ids)),
            outbox.c.status == PENDING,
            outbox.c.event == "resolve",
            outbox.c.hold.is_not(None),
        )
        .limit(1)
    ).first()
    return found is not None


def waiting(conn: Connection, incident_id: int, *, channel: str, target: str) -> bool:
    """Whether a row for this incident, channel and target waits to be sent (claimed ones aside)."""
    found = conn.execute(
        sa.select(outbox.c.id)
        .where(
            outbox.c.incident_id == incident_id,
            outbox.c.channel == channel,
            outbox.c.target == target,
            outbox.c.status == PENDING,
            outbox.c.lease_until.is_(None),
        )
        .limit(1)
    ).first()
    return found is not None


# 'pending' spelled as a literal: the partial indexes on pending rows (schema v15) apply only to
# queries whose WHERE implies theirs, and a bound parameter does not.
_PENDING = outbox.c.status == sa.literal_column("'pending'")
_DUE = sa.func.coalesce(outbox.c.lease_until, outbox.c.next_attempt_at)
# Built once: ingest runs it for every resolve it sends (a statement built per call leaves cyclic
# garbage behind, tests/integration/test_ingest_garbage.py).
_CANCEL_ESCALATION = (
    outbox.update()
    .where(
        outbox.c.incident_id.in_(sa.bindparam("ids", expanding=True)),
        _PENDING,
        _ESCALATION,
        outbox.c.lease_until.is_(None),
    )
    .values(status=CANCELLED, last_error=sa.bindparam("why", type_=sa.Text))
)


_WAITING_PAGE = sa.and_(
    outbox.c.incident_id.in_(sa.bindparam("ids", expanding=True)),
    _PENDING,
    outbox.c.event == sa.literal_column("'trigger'"),
    outbox.c.hold.is_not(None),
    outbox.c.lease_until.is_(None),
    ~_ESCALATION,
)
_WAITING_PAGE_CHANNELS = sa.select(outbox.c.channel).where(_WAITING_PAGE)
_CANCEL_WAITING_PAGES = (
    outbox.update().where(_WAITING_PAGE).values(status=CANCELLED, last_error=sa.bindparam("why", type_=sa.Text))
)


def _behind_another() -> sa.ColumnElement[bool]:
    """The row waits behind an earlier pending row of its channel: one of its incident, or one of
    an earlier episode of its alert that is not held (a held resolve is cancelled by a re-fire that
    continues its incident; one that does not continue it must not wait the hold out)."""
    same_incident, same_alert = outbox.alias("same_incident"), outbox.alias("same_alert")
    return sa.or_(
        sa.select(same_incident.c.id)
        .where(
            same_incident.c.incident_id == outbox.c.incident_id,
            same_incident.c.channel == outbox.c.channel,
            # An escalation's steps are not ordered by the outbox but by their due times: a step
            # that keeps failing (Slack down) must not hold back the next one (PagerDuty).
            same_incident.c.channel != sa.literal_column("'escalation'"),
            same_incident.c.status == PENDING,
            same_incident.c.id < outbox.c.id,
        )
        .exists(),
        sa.select(same_alert.c.id)
        .where(
            same_alert.c.fingerprint == outbox.c.fingerprint,
            same_alert.c.channel == outbox.c.channel,
            same_alert.c.status == PENDING,
            same_alert.c.hold.is_(None),
            same_alert.c.id < outbox.c.id,
        )
        .exists(),
    )


# Built once (SQLAlchemy then compiles each once): the senders run these on every pass.
_CLAIMABLE = (
    sa.select(
        outbox.c.id,
        outbox.c.incident_id,
        outbox.c.event,
        outbox.c.channel,
        outbox.c.target,
        outbox.c.payload,
        outbox.c.attempts,
        outbox.c.created_at,
    )
    .where(
        _PENDING,
        outbox.c.channel == sa.bindparam("channel"),
        outbox.c.next_attempt_at <= sa.bindparam("now"),
        sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= sa.bindparam("now")),
        ~_behind_another(),
    )
    .order_by(outbox.c.id)  # walks ix_outbox_pending_claim (channel, id): stops after ``limit``
    .limit(sa.bindparam("limit"))
)
# Replicas claiming at once: each skips the rows another is claiming, instead of waiting for them
# (and then claiming them too). SQLite's single writer needs no such thing.
_CLAIMABLE_SKIP_LOCKED = _CLAIMABLE.with_for_update(skip_locked=True, of=outbox)
_LEASE = (
    outbox.update()
    .where(outbox.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(
        lease_until=sa.bindparam("until", type_=UTCDateTime),
        lease_owner=sa.bindparam("owner", type_=sa.String),
    )
)


def claim_due(
    conn: Connection, channel: str, now: datetime, *, lease: timedelta, owner: str, limit: int
) -> list[OutboxRow]:
    """Take up to ``limit`` due rows of ``channel``, oldest first, at most the head row per incident
    (and per alert)."""
    query = _CLAIMABLE_SKIP_LOCKED if conn.dialect.name == "postgresql" else _CLAIMABLE
    rows = [OutboxRow(**row._asdict()) for row in conn.execute(query, {"channel": channel, "now": now, "limit": limit})]
    if rows:
        conn.execute(_LEASE, {"ids": [r.id for r in rows], "until": now + lease, "owner": owner})
    return rows


def renew_leases(conn: Connection, row_ids: Sequence[int], *, owner: str, until: datetime) -> list[int]:
    """Extend ``owner``'s leases on these rows; returns the ids it still held (and so may send)."""
    result = conn.execute(
        outbox.update()
        .where(outbox.c.id.in_(list(row_ids)), outbox.c.lease_owner == owner, outbox.c.status == PENDING)
        .values(lease_until=until)
        .returning(outbox.c.id)
    )
    return [row.id for row in result]


_DELIVERED = (
    outbox.update()
    .where(outbox.c.id == sa.bindparam("row_id"))
    .values(
        status=DELIVERED,
        # Sent: the timeline needs only the other columns (see store/retention.py). An escalation
        # row keeps its payload: it names the policy an acknowledgement then times (latest_escalation).
        payload=sa.case((_ESCALATION, outbox.c.payload), else_=sa.literal({}, outbox.c.payload.type)),
        delivered_at=sa.bindparam("at", type_=UTCDateTime),
        lease_until=None,
        lease_owner=None,
        attempts=outbox.c.attempts + 1,
    )
)


def mark_delivered_many(conn: Connection, delivered: Sequence[tuple[int, datetime]]) -> None:
    """Record many deliveries with one prepared statement."""
    if delivered:
        conn.execute(_DELIVERED, [{"row_id": row_id, "at": at} for row_id, at in delivered])


def mark_retry(conn: Connection, row_id: int, *, at: datetime, error: str) -> None:
    conn.execute(
        outbox.update()
        .where(outbox.c.id == row_id)
        .values(
            next_attempt_at=at, lease_until=None, lease_owner=None, last_error=error, attempts=outbox.c.attempts + 1
        )
    )


def defer(conn: Connection, row_ids: Sequence[int], *, until: datetime) -> None:
    """Put claimed rows back, due at ``until``, without counting an attempt (the channel is paused)."""
    conn.execute(
        outbox.update()
        .where(outbox.c.id.in_(list(row_ids)))
        .values(next_attempt_at=until, lease_until=None, lease_owner=None)
    )


def mark_failed(conn: Connection, row_id: int, *, error: str) -> None:
    conn.execute(
        outbox.update()
        .where(outbox.c.id == row_id)
        .values(status=FAILED, lease_until=None, lease_owner=None, last_error=error, attempts=outbox.c.attempts + 1)
    )


def release_leases(conn: Connection, owner: str | None = None) -> int:
    """Hand claimed-but-unsent rows back: those of ``owner`` (graceful stop), or all (``None``:
    a single-process SQLite store starting up, where no other sender can hold them)."""
    query = outbox.update().where(_PENDING, outbox.c.lease_until.is_not(None))
    if owner is not None:
        query = query.where(outbox.c.lease_owner == owner)
    result = conn.execute(query.values(lease_until=None, lease_owner=None))
    return result.rowcount


def retry_now(conn: Connection, now: datetime) -> int:
    """Make every pending row due now: a restart (often after a fix) retries at once. Held resolves
    keep waiting: their wait is a decision, not a backoff."""
    result = conn.execute(
        outbox.update()
        .where(_PENDING, outbox.c.next_attempt_at > now, outbox.c.hold.is_(None))
        .values(next_attempt_at=now)
    )
    return result.rowcount


# The earliest due time among rows not waiting behind another: walks ix_outbox_pending_due
# (channel, due) in due order and stops at the first such row.
_NEXT_DUE = (
    sa.select(_DUE.label("due"))
    .where(_PENDING, outbox.c.channel == sa.bindparam("channel"), ~_behind_another())
    .order_by(_DUE)
    .limit(1)
)


def next_due(conn: Connection, channel: str) -> datetime | None:
    """When the earliest pending row of ``channel`` becomes claimable (a held lease delays it). Rows
    waiting behind an earlier one do not count: they become claimable only after it, and counting
    them would have the sender wake, find nothing claimable, and look again at once."""
    value: datetime | None = conn.execute(_NEXT_DUE, {"channel": channel}).scalar()
    return value


def pending_count(conn: Connection) -> int:
    return int((conn.execute(sa.select(sa.func.count()).select_from(outbox).where(_PENDING))).scalar_one())


_OLDEST_PENDING = (
    sa.select(outbox.c.channel, sa.func.min(outbox.c.created_at))  # min() keeps the column's UTC type
    .where(_PENDING, outbox.c.hold.is_(None))  # a held resolve waits on purpose: not a backlog
    .group_by(outbox.c.channel)
)


def oldest_pending(conn: Connection) -> dict[str, datetime]:
    """Channel → when its oldest notification still waiting to be sent was queued."""
    return {channel: queued for channel, queued in conn.execute(_OLDEST_PENDING)}


def for_incident(conn: Connection, incident_id: int) -> list[Delivery]:
    rows = conn.execute(
        sa.select(
            outbox.c.id,
            outbox.c.event,
            outbox.c.channel,
            outbox.c.target,
            outbox.c.status,
            outbox.c.attempts,
            outbox.c.last_error,
            outbox.c.hold,
            outbox.c.next_attempt_at,
            outbox.c.created_at,
            outbox.c.delivered_at,
        )
        .where(outbox.c.incident_id == incident_id)
        .order_by(outbox.c.id)
    )
    return [
        {
            "id": row.id,
            "event": row.event,
            "channel": row.channel,
            "target": row.target,
            "status": row.status,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "hold": row.hold,
            "created_at": row.created_at.isoformat(),  # NOT NULL
            "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
            "held_until": row.next_attempt_at.isoformat() if row.hold and row.status == PENDING else None,
        }
        for row in rows
    ]


def coalesce_pending(conn: Connection, row: OutboxIntent) -> bool:
    """Replace the payload of a not-yet-claimed pending row for the same incident, channel, target and
    event (a storm summary that has not gone out yet gets the newer count). False when there is none."""
    result = conn.execute(
        outbox.update()
        .where(
            outbox.c.incident_id == row.incident_id,
            outbox.c.channel == str(row.channel),
            outbox.c.target == row.target,
            outbox.c.event == row.event.value,
            outbox.c.status == PENDING,
            outbox.c.lease_until.is_(None),
        )
        .values(payload=row.payload)
    )
    return result.rowcount > 0
