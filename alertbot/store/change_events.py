"""Change events — deployments, config changes, flag flips, traffic shifts — for "what changed?"."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.domain.changes import Change
from alertbot.store.schema import UTCDateTime, change_events, insert_ignore, record_json


@dataclass(frozen=True, kw_only=True)
class ChangeEvent(Change):
    """A change as stored: what correlation reads (``Change``), and where it came from."""

    event_id: str | None
    links: list[dict[str, str]]
    source: str
    created_at: datetime
    target: str = ""  # what to roll back: virtualservice/NAME or deployment/NAME, if known

    def to_json(self) -> dict[str, Any]:
        return record_json(self)


def record(conn: Connection, *, values: dict[str, Any], source: str, now: datetime) -> tuple[ChangeEvent, bool]:
    """Store an event; with an ``event_id`` seen before, return that one instead (created=False).
    Replicas recording the same event at once store it once."""
    event_id = values.get("event_id")
    if event_id:
        created = insert_ignore(conn, change_events, {**values, "source": source, "created_at": now}, on=["event_id"])
        row = conn.execute(sa.select(change_events).where(change_events.c.event_id == event_id)).one()
        return ChangeEvent(**row._asdict()), created
    result = conn.execute(
        change_events.insert().values(**values, source=source, created_at=now).returning(*change_events.c)
    )
    return ChangeEvent(**result.one()._asdict()), True


def get(conn: Connection, change_id: int) -> ChangeEvent | None:
    row = conn.execute(sa.select(change_events).where(change_events.c.id == change_id)).first()
    return ChangeEvent(**row._asdict()) if row is not None else None


# Prebuilt: read for every batch of alerts (see incidents.py on why hot statements are prebuilt).
_AROUND = (
    sa.select(change_events)
    .where(
        change_events.c.service.in_(sa.bindparam("services", expanding=True)),
        change_events.c.timestamp >= sa.bindparam("since", type_=UTCDateTime),
        change_events.c.timestamp <= sa.bindparam("until", type_=UTCDateTime),
    )
    .order_by(change_events.c.timestamp.desc(), change_events.c.id.desc())
)


def around(conn: Connection, *, services: Iterable[str], since: datetime, until: datetime) -> list[ChangeEvent]:
    """The changes to these services between two times, newest first (any namespace: the caller
    narrows)."""
    wanted = sorted(set(services))
    if not wanted:
        return []
    rows = conn.execute(_AROUND, {"services": wanted, "since": since, "until": until})
    return [ChangeEvent(**row._asdict()) for row in rows]


def recent(
    conn: Connection, *, service: str | None, namespace: str | None, since: datetime | None, limit: int
) -> list[ChangeEvent]:
    query = sa.select(change_events).order_by(change_events.c.timestamp.desc(), change_events.c.id.desc()).limit(limit)
    if service:
        query = query.where(change_events.c.service == service)
    if namespace:
        query = query.where(change_events.c.namespace == namespace)
    if since is not None:
        query = query.where(change_events.c.timestamp >= since)
    return [ChangeEvent(**row._asdict()) for row in conn.execute(query)]
