"""What ``GET /metrics`` reads from the store at each scrape, in one read transaction: the pending
outbox rows (how many, and how long the oldest of each channel has waited), firing incidents by
severity, and when the Watchdog was last seen. Each is an indexed read of what is open, not of
history (``ix_incidents_status``, the outbox's pending indexes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from alertbot.store import heartbeats, incidents, outbox


@dataclass(frozen=True)
class StoreFigures:
    pending: int
    oldest_pending: dict[str, datetime]  # channel → when its oldest waiting notification was queued
    firing: dict[str, int]  # severity → firing incidents
    watchdog_last_seen: datetime | None


def read(conn: Connection, watchdog: str | None) -> StoreFigures:
    beat = heartbeats.get(conn, watchdog) if watchdog is not None else None
    return StoreFigures(
        pending=outbox.pending_count(conn),
        oldest_pending=outbox.oldest_pending(conn),
        firing=incidents.firing_by_severity(conn),
        watchdog_last_seen=beat.last_seen if beat is not None else None,
    )
