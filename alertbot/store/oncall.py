"""On-call overrides made in Slack (those written in the config are not stored)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.domain.oncall import Override
from alertbot.store.schema import insert_ignore, oncall_handoffs, oncall_overrides

FORGET_SHIFTS = timedelta(days=60)


def add(conn: Connection, override: Override, now: datetime) -> int:
    result = conn.execute(
        oncall_overrides.insert().values(
            schedule=override.schedule,
            user_id=override.user,
            starts_at=override.start,
            ends_at=override.end,
            created_by=override.created_by,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def in_force(conn: Connection, configured: Sequence[Override], now: datetime) -> list[Override]:
    """The config's overrides, then those made in Slack: ``on_call`` lets the last one covering an
    instant win, so a newer stored override beats the config."""
    return [*configured, *current(conn, now)]


def current(conn: Connection, now: datetime) -> list[Override]:
    """Overrides not over yet, oldest first (a newer one covering the same time wins)."""
    rows = conn.execute(
        sa.select(oncall_overrides).where(oncall_overrides.c.ends_at > now).order_by(oncall_overrides.c.id)
    )
    return [
        Override(schedule=r.schedule, user=r.user_id, start=r.starts_at, end=r.ends_at, created_by=r.created_by)
        for r in rows
    ]


def handed_off(conn: Connection, schedule: str, shift_key: str, now: datetime) -> str | None:
    """Record ``shift_key`` as a shift of ``schedule`` seen now. Returns the shift seen before it
    when this call is the first to record it (its caller announces the hand-off: one replica does);
    None when the shift was recorded already — by another replica, or by one whose copy of a
    calendar is staler (a shift is never announced twice) — or is the first shift ever seen."""
    previous = conn.execute(
        sa.select(oncall_handoffs.c.shift_key)
        .where(oncall_handoffs.c.schedule == schedule)
        .order_by(oncall_handoffs.c.seen_at.desc())
        .limit(1)
    ).scalar()
    if not insert_ignore(
        conn,
        oncall_handoffs,
        {"schedule": schedule, "shift_key": shift_key, "seen_at": now},
        on=["schedule", "shift_key"],
    ):
        return None
    conn.execute(  # shifts seen long ago never come back (their start is in the key)
        oncall_handoffs.delete().where(
            oncall_handoffs.c.schedule == schedule, oncall_handoffs.c.seen_at < now - FORGET_SHIFTS
        )
    )
    return str(previous) if previous is not None else None
