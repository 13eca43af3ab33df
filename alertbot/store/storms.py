"""Alert storms: one active storm per Alertmanager group, summarised in one notification per channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.domain.outbox import StoredDestination
from alertbot.store.schema import UTCDateTime, incidents, storms


@dataclass(frozen=True)
class Storm:
    id: int
    group_key: str
    group_labels: dict[str, str]
    anchor_incident_id: int
    count: int
    destinations: list[StoredDestination]

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


def get(conn: Connection, storm_id: int) -> Storm | None:
    row = (conn.execute(sa.select(storms).where(storms.c.id == storm_id))).first()
    return _storm(row) if row else None


def start(
    conn: Connection,
    *,
    group_key: str,
    group_labels: dict[str, str],
    anchor_incident_id: int,
    destinations: Sequence[StoredDestination],
    now: datetime,
) -> Storm:
    result = conn.execute(
        storms.insert()
        .values(
            group_key=group_key,
            group_labels=group_labels,
            anchor_incident_id=anchor_incident_id,
            count=1,
            destinations=list(destinations),
            started_at=now,
        )
        .returning(*storms.c)
    )
    return _storm(result.one())


def joined(storm: Storm, destinations: Sequence[StoredDestination]) -> Storm:
    """The storm with one more member (going to ``destinations``), as the store will have it once
    ``add_members`` has written the batch's members."""
    merged = list(storm.destinations) + [d for d in destinations if d not in storm.destinations]
    return Storm(storm.id, storm.group_key, storm.group_labels, storm.anchor_incident_id, storm.count + 1, merged)


def add_members(conn: Connection, storm: Storm, added: int) -> None:
    """Count ``added`` more members (one statement per storm and batch) and keep its destinations."""
    conn.execute(
        storms.update()
        .where(storms.c.id == storm.id)
        .values(count=storms.c.count + added, destinations=list(storm.destinations))
    )


def finish(conn: Connection, storm_id: int, now: datetime) -> None:
    conn.execute(storms.update().where(storms.c.id == storm_id).values(resolved_at=now))


def _members(storm: Storm, status: str) -> sa.Select[Any]:
    return sa.select(incidents.c.id).where(
        incidents.c.group_key == storm.group_key,
        incidents.c.status == status,
        incidents.c.suppressed_by.like(f"{storm.marker}%"),
    )


def any_firing(conn: Connection, storm: Storm) -> bool:
    """Is a member of the storm still firing? (ix_incidents_group_status: the first found answers.)"""
    return conn.execute(_members(storm, "firing").limit(1)).first() is not None


def firing_count(conn: Connection, storm: Storm) -> int:
    """How many members are firing: the storm's count (every member joined, as stored) less those
    resolved — a read of the resolved few (ix_incidents_group_status), not of every member."""
    stored = conn.execute(sa.select(storms.c.count).where(storms.c.id == storm.id)).scalar_one()
    resolved = conn.execute(sa.select(sa.func.count()).select_from(_members(storm, "resolved").subquery())).scalar_one()
    return max(0, int(stored) - int(resolved))


def firing_members(conn: Connection, storm: Storm) -> int:
    return int(
        (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(incidents)
                .where(
                    incidents.c.group_key == storm.group_key,
                    incidents.c.status == "firing",
                    incidents.c.suppressed_by.like(f"{storm.marker}%"),
                )
            )
        ).scalar_one()
    )


_ACTIVE_OF = (
    sa.select(storms)
    .where(storms.c.group_key.in_(sa.bindparam("groups", expanding=True)), storms.c.resolved_at.is_(None))
    .order_by(storms.c.id)
)
_ARRIVED_IN = (
    sa.select(incidents.c.group_key, sa.func.count())
    .select_from(incidents)
    .where(
        incidents.c.group_key.in_(sa.bindparam("groups", expanding=True)),
        incidents.c.created_at >= sa.bindparam("since", type_=UTCDateTime),
    )
    .group_by(incidents.c.group_key)
)


def active_of(conn: Connection, group_keys: Sequence[str]) -> dict[str, Storm]:
    """The active storm of each of these groups that has one."""
    if not group_keys:
        return {}
    return {(storm := _storm(row)).group_key: storm for row in conn.execute(_ACTIVE_OF, {"groups": list(group_keys)})}


def arrived_in(conn: Connection, group_keys: Sequence[str], since: datetime) -> dict[str, int]:
    """How many alerts of each group arrived since ``since``."""
    if not group_keys:
        return {}
    rows = conn.execute(_ARRIVED_IN, {"groups": list(group_keys), "since": since})
    return {row[0]: int(row[1]) for row in rows}


def sample(conn: Connection, storm: Storm, limit: int = 5) -> list[str]:
    rows = conn.execute(
        sa.select(incidents.c.alertname, incidents.c.service, incidents.c.annotations)
        .where(incidents.c.group_key == storm.group_key, incidents.c.suppressed_by.like(f"{storm.marker}%"))
        # Newest first along ix_incidents_group_id (group_key, id): a storm's newest members are
        # found without reading the others.
        .order_by(incidents.c.id.desc())
        .limit(limit)
    )
    return [str(row.annotations.get("summary") or f"{row.alertname} {row.service}".strip()) for row in rows]
