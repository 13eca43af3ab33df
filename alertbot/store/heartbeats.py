"""The dead man's switch: when Alertmanager's always-firing Watchdog was last seen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.store.schema import heartbeats, insert_ignore


@dataclass(frozen=True)
class Heartbeat:
    name: str
    last_seen: datetime
    incident_id: int | None


def get(conn: Connection, name: str) -> Heartbeat | None:
    row = conn.execute(sa.select(heartbeats).where(heartbeats.c.name == name)).first()
    return Heartbeat(row.name, row.last_seen, row.incident_id) if row else None


def seen(conn: Connection, name: str, now: datetime) -> int | None:
    """Record a Watchdog; returns the open "pipeline broken" incident it ends, if any."""
    if insert_ignore(conn, heartbeats, {"name": name, "last_seen": now, "incident_id": None}, on=["name"]):
        return None
    current = get(conn, name)
    assert current is not None
    conn.execute(heartbeats.update().where(heartbeats.c.name == name).values(last_seen=now, incident_id=None))
    return current.incident_id


def start_grace(conn: Connection, name: str, now: datetime) -> Heartbeat:
    """First look: count from now (a fresh alertbot has not missed anything yet)."""
    insert_ignore(conn, heartbeats, {"name": name, "last_seen": now, "incident_id": None}, on=["name"])
    current = get(conn, name)
    assert current is not None
    return current


def claim_page(conn: Connection, name: str) -> bool:
    """Take the right to page for a missed Watchdog; False when it is taken (another replica paged,
    or is paging: its transaction holds the row until it commits)."""
    result = conn.execute(
        heartbeats.update()
        .where(heartbeats.c.name == name, heartbeats.c.incident_id.is_(None))
        .values(incident_id=0)
        .returning(heartbeats.c.name)
    )
    return result.first() is not None


def paged(conn: Connection, name: str, incident_id: int) -> None:
    conn.execute(heartbeats.update().where(heartbeats.c.name == name).values(incident_id=incident_id))
