"""Incidents: one per alert episode, identified by (fingerprint, startsAt) as Alertmanager does.

That identity is also the de-duplication key: an HA Alertmanager pair or a retry delivering the
same alert again finds the row and changes nothing that would notify twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.domain.models import Alert, Classification, Severity
from alertbot.store.bulk import insert_ordered
from alertbot.store.schema import UTCDateTime, incidents, record_json


@dataclass(frozen=True)
class IncidentRecord:
    id: int
    fingerprint: str
    starts_at: datetime
    status: str
    alertname: str
    service: str
    namespace: str
    severity: Severity
    reason: str
    sli: str | None
    value: float | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    group_key: str
    destinations: list[dict[str, Any]]
    suppressed_by: str | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    acked_by: str | None = None
    acked_at: datetime | None = None
    resolved_by: str | None = None
    lead_id: int | None = None  # the incident this re-fire continues (flapping, held resolve)

    def under(self, lead: IncidentRecord) -> IncidentRecord:
        """This episode's state under its chain's identity: the lead's id, fingerprint, startsAt and
        destinations (its PagerDuty dedup key and Slack message), this episode's status and times."""
        if lead.id == self.id:
            return self
        return dataclasses.replace(
            lead,
            status=self.status,
            annotations=self.annotations,
            ends_at=self.ends_at,
            resolved_at=self.resolved_at,
            acked_by=self.acked_by,
            acked_at=self.acked_at,
            resolved_by=self.resolved_by,
        )

    @property
    def chain_id(self) -> int:
        """The incident whose identity (PagerDuty dedup key, Slack message) this one notifies under."""
        return self.lead_id if self.lead_id is not None else self.id

    @property
    def key(self) -> tuple[str, datetime]:
        return self.fingerprint, self.starts_at

    def to_json(self) -> dict[str, Any]:
        return record_json(self)


def _record(row: sa.Row[Any]) -> IncidentRecord:
    data = row._asdict()
    data["severity"] = Severity(data["severity"])
    return IncidentRecord(**data)


# Hot-path statements are built once with bind parameters: SQLAlchemy then compiles each once
# and reuses it, instead of rebuilding the construct per alert (most of ingest's cost otherwise).
_BY_FINGERPRINTS = sa.select(incidents).where(incidents.c.fingerprint.in_(sa.bindparam("fps", expanding=True)))
_REFRESH = (
    incidents.update()
    .where(incidents.c.id == sa.bindparam("iid"))
    .values(annotations=sa.bindparam("annotations", type_=sa.JSON), updated_at=sa.bindparam("now", type_=UTCDateTime))
)
_RESOLVE = (
    incidents.update()
    .where(incidents.c.id == sa.bindparam("iid"), incidents.c.status == "firing")
    .values(
        status="resolved",
        ends_at=sa.bindparam("ends_at", type_=UTCDateTime),
        resolved_at=sa.bindparam("now", type_=UTCDateTime),
        updated_at=sa.bindparam("now", type_=UTCDateTime),
    )
    .returning(incidents.c.id)
)
_OUTCOME = (
    incidents.update()
    .where(incidents.c.id == sa.bindparam("iid"))
    .values(
        destinations=sa.bindparam("destinations", type_=sa.JSON),
        suppressed_by=sa.bindparam("suppressed_by"),
        updated_at=sa.bindparam("now", type_=UTCDateTime),
    )
)
_GET = sa.select(incidents).where(incidents.c.id == sa.bindparam("iid"))


def episodes(conn: Connection, fingerprints: Iterable[str]) -> dict[tuple[str, datetime], IncidentRecord]:
    """Every incident (episode) of these fingerprints, by (fingerprint, startsAt)."""
    wanted = sorted(set(fingerprints))
    if not wanted:
        return {}
    return {(r := _record(row)).key: r for row in conn.execute(_BY_FINGERPRINTS, {"fps": wanted})}


def insert(
    conn: Connection, alert: Alert, classification: Classification, *, group_key: str, now: datetime
) -> IncidentRecord:
    [record] = insert_many(conn, [(alert, classification, group_key)], now)
    return record


def insert_many(
    conn: Connection, new: Sequence[tuple[Alert, Classification, str]], now: datetime
) -> list[IncidentRecord]:
    """Store new alerts (alert, its classification, its group key) with one statement; their ids
    follow the order given. Returns the records as a read would, built from what was written."""
    if not new:
        return []
    values = [_values(alert, classification, group_key, now) for alert, classification, group_key in new]
    ids = insert_ordered(conn, incidents, values)
    return [
        IncidentRecord(
            id=new_id,
            **{
                **v,
                "severity": c.severity,
                "starts_at": _utc(v["starts_at"]),
                "ends_at": _utc(v["ends_at"]),
                "created_at": _utc(now),
                "updated_at": _utc(now),
                "resolved_at": _utc(v["resolved_at"]),
            },
        )
        for new_id, v, (_, c, _) in zip(ids, values, new, strict=True)
    ]


def _values(alert: Alert, classification: Classification, group_key: str, now: datetime) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at,
        "status": alert.status.value,
        "alertname": alert.alertname,
        "service": alert.service,
        "namespace": alert.namespace,
        "severity": classification.severity.value,
        "reason": classification.reason,
        "sli": classification.sli,
        "value": classification.value,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "generator_url": alert.generator_url,
        "group_key": group_key,
        "destinations": [],
        "suppressed_by": None,
        "ends_at": alert.ends_at,
        "created_at": now,
        "updated_at": now,
        "resolved_at": now if alert.status.value == "resolved" else None,
    }


def _utc(moment: datetime | None) -> datetime | None:
    """A time as the store gives it back: UTC, to the microsecond (see schema.UTCDateTime)."""
    return moment.astimezone(UTC) if moment is not None else None


def refresh(conn: Connection, incident_id: int, alert: Alert, now: datetime) -> None:
    """A repeated delivery of a known firing alert: keep its latest annotations, notify nothing."""
    conn.execute(_REFRESH, {"iid": incident_id, "annotations": dict(alert.annotations), "now": now})


def resolve(conn: Connection, incident_id: int, alert: Alert, now: datetime) -> bool:
    """Mark a firing incident resolved; False when it no longer was firing — another replica (sharing
    the store) resolved it first from its copy of the same notification, or someone did by hand."""
    return conn.execute(_RESOLVE, {"iid": incident_id, "ends_at": alert.ends_at or now, "now": now}).first() is not None


def set_outcome(
    conn: Connection,
    incident_id: int,
    *,
    destinations: Sequence[dict[str, Any]],
    suppressed_by: str | None,
    now: datetime,
) -> None:
    set_outcomes(conn, [(incident_id, destinations, suppressed_by)], now)


def set_outcomes(
    conn: Connection, outcomes: Sequence[tuple[int, Sequence[dict[str, Any]], str | None]], now: datetime
) -> None:
    """Where each incident went (destinations) or why not (suppressed_by), in one executemany."""
    if outcomes:
        params = [{"iid": i, "destinations": list(d), "suppressed_by": why, "now": now} for i, d, why in outcomes]
        conn.execute(_OUTCOME, params[0] if len(params) == 1 else params)


def lift_suppression(
    conn: Connection, incident_id: int, *, was: str, destinations: Sequence[dict[str, Any]], now: datetime
) -> bool:
    """The silence that muted a firing incident is over: it is notified now. False when its
    suppression had already changed (another replica lifted it first)."""
    result = conn.execute(
        incidents.update()
        .where(incidents.c.id == incident_id, incidents.c.suppressed_by == was)
        .values(destinations=list(destinations), suppressed_by=None, updated_at=now)
        .returning(incidents.c.id)
    )
    return result.first() is not None


def continue_chain(conn: Connection, incident_id: int, *, lead_id: int, why: str, now: datetime) -> None:
    """This new episode continues the chain of ``lead_id``: it notifies nothing of its own."""
    conn.execute(
        incidents.update()
        .where(incidents.c.id == incident_id)
        .values(lead_id=lead_id, destinations=[], suppressed_by=why, updated_at=now)
    )


def chain(conn: Connection, incident_id: int) -> list[IncidentRecord]:
    """Every episode of the chain ``incident_id`` belongs to, oldest first (just itself, usually)."""
    record = get(conn, incident_id)
    if record is None:
        return []
    lead = record.chain_id
    rows = conn.execute(
        sa.select(incidents).where(sa.or_(incidents.c.id == lead, incidents.c.lead_id == lead)).order_by(incidents.c.id)
    )
    return [_record(row) for row in rows]


def current_of_chain(conn: Connection, incident_id: int) -> IncidentRecord | None:
    """The newest episode of the chain ``incident_id`` belongs to (itself when it has none): what a
    button on the chain's Slack message acts on."""
    episodes = chain(conn, incident_id)
    return episodes[-1] if episodes else None


def acknowledge(conn: Connection, incident_id: int, *, by: str, now: datetime) -> IncidentRecord | None:
    """Mark a firing incident acknowledged; None if it is not firing or was acknowledged already."""
    result = conn.execute(
        incidents.update()
        .where(incidents.c.id == incident_id, incidents.c.status == "firing", incidents.c.acked_by.is_(None))
        .values(acked_by=by, acked_at=now, updated_at=now)
    )
    return get(conn, incident_id) if result.rowcount else None


def unacknowledge(conn: Connection, incident_id: int, *, by: str, now: datetime) -> IncidentRecord | None:
    """End ``by``'s acknowledgement of a firing incident (it lapsed); None if it no longer holds."""
    result = conn.execute(
        incidents.update()
        .where(incidents.c.id == incident_id, incidents.c.status == "firing", incidents.c.acked_by == by)
        .values(acked_by=None, acked_at=None, updated_at=now)
    )
    return get(conn, incident_id) if result.rowcount else None


def resolve_by_hand(conn: Connection, incident_id: int, *, by: str, now: datetime) -> IncidentRecord | None:
    """Resolve a firing incident on someone's word; None if it is not firing."""
    result = conn.execute(
        incidents.update()
        .where(incidents.c.id == incident_id, incidents.c.status == "firing")
        .values(status="resolved", ends_at=now, resolved_at=now, resolved_by=by, updated_at=now)
    )
    return get(conn, incident_id) if result.rowcount else None


# Inhibition sources (ingest/view.py InhibitionSources): the firing incidents of one scope, narrowed
# to one severity when a rule's source matchers pin it. Looked up by ix_incidents_firing_sources
# (service, severity, namespace, status), so a warning storm of a service does not make its check
# read every warning: only its (few) criticals. One statement per combination, built once.
_SOURCES = sa.select(
    incidents.c.id, incidents.c.service, incidents.c.namespace, incidents.c.labels, incidents.c.severity
).where(incidents.c.status == "firing")
_SOURCE_FILTERS = {
    "service": incidents.c.service == sa.bindparam("service"),
    "severity": incidents.c.severity == sa.bindparam("severity"),
    "namespace": incidents.c.namespace == sa.bindparam("namespace"),
}
_SOURCES_BY: dict[frozenset[str], sa.Select[Any]] = {}
for _mask in range(8):
    _names = frozenset(name for bit, name in enumerate(_SOURCE_FILTERS) if _mask & (1 << bit))
    _SOURCES_BY[_names] = _SOURCES.where(*(_SOURCE_FILTERS[name] for name in _SOURCE_FILTERS if name in _names))


def firing_sources(
    conn: Connection, *, service: str | None, namespace: str | None, severity: str | None
) -> dict[int, tuple[str, str, dict[str, str]]]:
    """Firing incidents (of this service, namespace and severity, where given): id → (service,
    namespace, matching labels)."""
    params = {
        name: value
        for name, value in (("service", service), ("severity", severity), ("namespace", namespace))
        if value is not None
    }
    rows = conn.execute(_SOURCES_BY[frozenset(params)], params)
    return {row.id: (row.service, row.namespace, {**row.labels, "severity": row.severity}) for row in rows}


def critical_since(conn: Connection, *, service: str, namespace: str, since: datetime) -> bool:
    """Has a critical alert for the service fired since ``since``, or is one firing still?"""
    query = (
        sa.select(incidents.c.id)
        .where(
            incidents.c.service == service,
            incidents.c.namespace == namespace,
            incidents.c.severity == "critical",
            sa.or_(incidents.c.status == "firing", incidents.c.starts_at >= since),
        )
        .limit(1)
    )
    return conn.execute(query).first() is not None


def list_incidents(conn: Connection, *, status: str | None = None, limit: int = 500) -> list[IncidentRecord]:
    query = sa.select(incidents).order_by(incidents.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(incidents.c.status == status)
    return [_record(row) for row in conn.execute(query)]


def get(conn: Connection, incident_id: int) -> IncidentRecord | None:
    row = conn.execute(_GET, {"iid": incident_id}).first()
    return _record(row) if row is not None else None


_FIRING_BY_SEVERITY = (
    sa.select(incidents.c.severity, sa.func.count())
    .where(incidents.c.status == "firing")  # ix_incidents_status (status, severity): the index alone
    .group_by(incidents.c.severity)
)


def firing_by_severity(conn: Connection) -> dict[str, int]:
    return {str(severity): int(count) for severity, count in conn.execute(_FIRING_BY_SEVERITY)}
