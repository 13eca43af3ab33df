"""An incident's history in words: why it was suppressed, continued, held back — what on-call
reads in the API and the timeline to understand what alertbot did and did not do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.store.schema import incident_notes, record_json


@dataclass(frozen=True)
class Note:
    id: int
    incident_id: int
    kind: str
    text: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return record_json(self)


def add(conn: Connection, incident_ids: Sequence[int], *, kind: str, text: str, now: datetime) -> None:
    """The same note on each incident named (a chain's lead and its newest episode, say)."""
    ids = list(dict.fromkeys(incident_ids))
    if ids:
        conn.execute(incident_notes.insert(), [{"incident_id": i, "kind": kind, "text": text, "at": now} for i in ids])


def for_incidents(conn: Connection, incident_ids: Sequence[int]) -> list[Note]:
    rows = conn.execute(
        sa.select(incident_notes)
        .where(incident_notes.c.incident_id.in_(list(incident_ids)))
        .order_by(incident_notes.c.id)
    )
    return [Note(**row._asdict()) for row in rows]
