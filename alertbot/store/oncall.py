"""On-call overrides made in Slack (those written in the config are not stored)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.domain.oncall import Override
from alertbot.store.schema import insert_ignore, oncall_handoffs, oncall_overrides


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
    """Record ``shift_key`` as ``schedule``'s current shift. Returns the shift it replaced when this
    call made the change (its caller announces the hand-off: one replica does); None when the shift
    was recorded already, or is the first one seen (nobody handed it off)."""
    if insert_ignore(
        conn, oncall_handoffs, {"schedule": schedule, "shift_key": shift_key, "updated_at": now}, on=["schedule"]
    ):
        return None
    before = conn.execute(
        sa.select(oncall_handoffs.c.shift_key).where(oncall_handoffs.c.schedule == schedule)
    ).scalar_one()
    if before == shift_key:
        return None
    changed = conn.execute(
        oncall_handoffs.update()
        .where(oncall_handoffs.c.schedule == schedule, oncall_handoffs.c.shift_key == before)
        .values(shift_key=shift_key, updated_at=now)
    )
    return str(before) if changed.rowcount else None
