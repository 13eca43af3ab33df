"""Shadow mode's record: what alertbot would have sent or run, and for which incident."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.store.schema import decisions, record_json


class NotifyDecision(TypedDict):
    """Shadow mode would have notified: the event and the destination (``StoredDestination``'s keys)."""

    event: str
    channel: str
    target: str
    stands_in_for: list[str]
    severity: str


class RunDecision(TypedDict):
    """Shadow mode would have run an automation's runbook."""

    automation: str
    runbook: str
    params: dict[str, str]


class EscalateDecision(TypedDict):
    """Shadow mode would have escalated the page: the policy and its steps, in order."""

    policy: str
    steps: list[dict[str, Any]]  # {number, target, after_seconds}


DecisionDetail = NotifyDecision | RunDecision | EscalateDecision


@dataclass(frozen=True)
class Decision:
    id: int
    incident_id: int
    kind: str
    summary: str
    detail: DecisionDetail
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return record_json(self)


def record(
    conn: Connection, *, incident_id: int, kind: str, summary: str, detail: DecisionDetail, now: datetime
) -> None:
    conn.execute(
        decisions.insert().values(incident_id=incident_id, kind=kind, summary=summary, detail=detail, created_at=now)
    )


def recent(conn: Connection, limit: int = 200) -> list[Decision]:
    rows = conn.execute(sa.select(decisions).order_by(decisions.c.id.desc()).limit(limit))
    return [Decision(**row._asdict()) for row in rows]
