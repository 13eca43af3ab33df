"""Which Slack message shows which incident, so a resolve updates it in place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.store.schema import slack_messages


@dataclass(frozen=True)
class SlackMessageRef:
    incident_id: int
    channel_id: str
    ts: str


def for_incident(conn: Connection, incident_id: int, target: str) -> SlackMessageRef | None:
    row = (
        conn.execute(
            sa.select(slack_messages.c.incident_id, slack_messages.c.channel_id, slack_messages.c.ts).where(
                slack_messages.c.incident_id == incident_id, slack_messages.c.target == target
            )
        )
    ).first()
    return SlackMessageRef(row.incident_id, row.channel_id, row.ts) if row else None


def latest_for_fingerprint(conn: Connection, fingerprint: str, target: str, since: datetime) -> SlackMessageRef | None:
    """The most recent message of an earlier episode of the same alert (a re-fire continues its thread)."""
    row = (
        conn.execute(
            sa.select(slack_messages.c.incident_id, slack_messages.c.channel_id, slack_messages.c.ts)
            .where(
                slack_messages.c.fingerprint == fingerprint,
                slack_messages.c.target == target,
                slack_messages.c.created_at >= since,
            )
            .order_by(slack_messages.c.id.desc())
            .limit(1)
        )
    ).first()
    return SlackMessageRef(row.incident_id, row.channel_id, row.ts) if row else None


def save(
    conn: Connection, *, incident_id: int, fingerprint: str, target: str, channel_id: str, ts: str, now: datetime
) -> None:
    existing = for_incident(conn, incident_id, target)
    if existing is not None:
        conn.execute(
            slack_messages.update()
            .where(slack_messages.c.incident_id == incident_id, slack_messages.c.target == target)
            .values(channel_id=channel_id, ts=ts)
        )
        return
    conn.execute(
        slack_messages.insert().values(
            incident_id=incident_id,
            fingerprint=fingerprint,
            target=target,
            channel_id=channel_id,
            ts=ts,
            created_at=now,
        )
    )
