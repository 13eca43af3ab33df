"""Alert storms: one active storm per Alertmanager group, summarised in one notification per channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.store.schema import UTCDateTime, incidents, storms


@dataclass(frozen=True)
class Storm:
    id: int
    group_key: str
    group_labels: dict[str, str]
    anchor_incident_id: int
    count: int
    destinations: list[dict[str, Any]]

    @property
    def marker(self) -> str:
        """The ``suppressed_by`` prefix of every incident summarised by this storm."""
        return f"storm {self.id}:"


def storm_id_of(suppressed_by: str | None) -> int | None:
    """The storm an incident was summarised by, from its ``suppressed_by`` marker."""
    if not suppressed_by or not suppressed_by.startswith("storm "):
        return None
    return int(suppressed_by.split(" ", 2)[1].rstrip(":"))


def _storm(row: sa.Row[Any]) -> Storm:
    m = row._mapping  # (row.count would be the tuple method)
    return Storm(m["id"], m["group_key"], m["group_labels"], m["anchor_incident_id"], m["count"], m["destinations"])


_ACTIVE = (sa.select(storms).where(storms.c.group_key == sa.bindparam("group_key"), storms.c.resolved_at.is_(None))
           .order_by(storms.c.id.desc()).limit(1))
_ARRIVED = (sa.select(sa.func.count()).select_from(incidents)
            .where(incidents.c.group_key == sa.bindparam("group_key"),
                   incidents.c.created_at >= sa.bindparam("since", type_=UTCDateTime),
                   incidents.c.id <= sa.bindparam("iid")))


def active(conn: Connection, group_key: str) -> Storm | None:
    row = conn.execute(_ACTIVE, {"group_key": group_key}).first()
    return _storm(row) if row else None


def get(conn: Connection, storm_id: int) -> Storm | None:
    row = (conn.execute(sa.select(storms).where(storms.c.id == storm_id))).first()
    return _storm(row) if row else None


def start(conn: Connection, *, group_key: str, group_labels: dict[str, str], anchor_incident_id: int,
                destinations: Sequence[dict[str, Any]], now: datetime) -> Storm:
    result = conn.execute(storms.insert().values(
        group_key=group_key, group_labels=group_labels, anchor_incident_id=anchor_incident_id, count=1,
        destinations=list(destinations), started_at=now).returning(*storms.c))
    return _storm(result.one())


def join(conn: Connection, storm: Storm, destinations: Sequence[dict[str, Any]]) -> Storm:
    merged = list(storm.destinations) + [d for d in destinations if d not in storm.destinations]
    conn.execute(storms.update().where(storms.c.id == storm.id)
                       .values(count=storms.c.count + 1, destinations=merged))
    return Storm(storm.id, storm.group_key, storm.group_labels, storm.anchor_incident_id, storm.count + 1, merged)


def finish(conn: Connection, storm_id: int, now: datetime) -> None:
    conn.execute(storms.update().where(storms.c.id == storm_id).values(resolved_at=now))


def firing_members(conn: Connection, storm: Storm) -> int:
    return int((conn.execute(
        sa.select(sa.func.count()).select_from(incidents)
        .where(incidents.c.group_key == storm.group_key, incidents.c.status == "firing",
               incidents.c.suppressed_by.like(f"{storm.marker}%"))
    )).scalar_one())


def arrived_before(conn: Connection, group_key: str, since: datetime, incident_id: int) -> int:
    """How many alerts of the group arrived since ``since``, up to and including ``incident_id``."""
    return int(conn.execute(_ARRIVED, {"group_key": group_key, "since": since, "iid": incident_id}).scalar_one())


def sample(conn: Connection, storm: Storm, limit: int = 5) -> list[str]:
    rows = conn.execute(
        sa.select(incidents.c.alertname, incidents.c.service, incidents.c.annotations)
        .where(incidents.c.group_key == storm.group_key, incidents.c.suppressed_by.like(f"{storm.marker}%"))
        .order_by(incidents.c.id.desc()).limit(limit)
    )
    return [str(row.annotations.get("summary") or f"{row.alertname} {row.service}".strip()) for row in rows]
