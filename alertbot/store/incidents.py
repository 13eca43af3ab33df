"""Incidents: one per alert episode, identified by (fingerprint, startsAt) as Alertmanager does.

That identity is also the de-duplication key: an HA Alertmanager pair or a retry delivering the
same alert again finds the row and changes nothing that would notify twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from alertbot.domain.models import Alert, Classification, Severity
from alertbot.store.schema import incidents


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

    @property
    def key(self) -> tuple[str, datetime]:
        return self.fingerprint, self.starts_at

    @property
    def classification(self) -> Classification:
        return Classification(self.severity, self.reason, self.sli, self.value)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


def _record(row: sa.Row[Any]) -> IncidentRecord:
    data = row._asdict()
    data["severity"] = Severity(data["severity"])
    return IncidentRecord(**data)


async def get_by_keys(conn: AsyncConnection, keys: Iterable[tuple[str, datetime]]) -> dict[tuple[str, datetime],
                                                                                         IncidentRecord]:
    wanted = set(keys)
    if not wanted:
        return {}
    fingerprints = sorted({fp for fp, _ in wanted})
    rows = await conn.execute(sa.select(incidents).where(incidents.c.fingerprint.in_(fingerprints)))
    found = {}
    for row in rows:
        record = _record(row)
        if record.key in wanted:
            found[record.key] = record
    return found


async def insert(conn: AsyncConnection, alert: Alert, classification: Classification, *, group_key: str,
                 now: datetime) -> IncidentRecord:
    values = {
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
    result = await conn.execute(incidents.insert().values(**values).returning(*incidents.c))
    return _record(result.one())


async def refresh(conn: AsyncConnection, incident_id: int, alert: Alert, now: datetime) -> None:
    """A repeated delivery of a known firing alert: keep its latest annotations, notify nothing."""
    await conn.execute(
        incidents.update().where(incidents.c.id == incident_id)
        .values(annotations=dict(alert.annotations), updated_at=now)
    )


async def resolve(conn: AsyncConnection, incident_id: int, alert: Alert, now: datetime) -> None:
    await conn.execute(
        incidents.update().where(incidents.c.id == incident_id)
        .values(status="resolved", ends_at=alert.ends_at or now, resolved_at=now, updated_at=now)
    )


async def set_outcome(conn: AsyncConnection, incident_id: int, *, destinations: Sequence[dict[str, Any]],
                      suppressed_by: str | None, now: datetime) -> None:
    await conn.execute(
        incidents.update().where(incidents.c.id == incident_id)
        .values(destinations=list(destinations), suppressed_by=suppressed_by, updated_at=now)
    )


async def firing_labels(conn: AsyncConnection) -> list[dict[str, str]]:
    """The matching labels (labels + classified severity) of every firing incident, for inhibition."""
    rows = await conn.execute(
        sa.select(incidents.c.labels, incidents.c.severity).where(incidents.c.status == "firing")
    )
    return [{**row.labels, "severity": row.severity} for row in rows]


async def list_incidents(conn: AsyncConnection, *, status: str | None = None, limit: int = 500) -> list[IncidentRecord]:
    query = sa.select(incidents).order_by(incidents.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(incidents.c.status == status)
    return [_record(row) for row in await conn.execute(query)]


async def get(conn: AsyncConnection, incident_id: int) -> IncidentRecord | None:
    row = (await conn.execute(sa.select(incidents).where(incidents.c.id == incident_id))).first()
    return _record(row) if row is not None else None
