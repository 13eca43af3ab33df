"""Signed Slack requests already accepted, shared by every replica for the signing window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from alertbot.store.schema import insert_ignore, slack_requests


def remember(conn: Connection, signature: str, *, sent_at: datetime, forget_before: datetime) -> bool:
    """Record a request by its signature; False when it was already recorded (a replay, whichever
    replica saw it first). Records older than ``forget_before`` go: their timestamp is refused anyway."""
    conn.execute(slack_requests.delete().where(slack_requests.c.sent_at < forget_before))
    return insert_ignore(conn, slack_requests, {"signature": signature, "sent_at": sent_at}, on=["signature"])
