"""Silences, stored so that every replica and the CLI see the same ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.domain.matchers import Matcher
from alertbot.domain.silence import Silence
from alertbot.store.schema import UTCDateTime, silences


def _silence(row: sa.Row[Any]) -> Silence:
    return Silence(
        id=row.id,
        matchers=tuple(Matcher.parse(m) for m in row.matchers),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        comment=row.comment,
    )


def create(
    conn: Connection,
    matchers: Sequence[Matcher],
    *,
    starts_at: datetime,
    ends_at: datetime,
    created_by: str,
    comment: str,
    now: datetime,
) -> Silence:
    result = conn.execute(
        silences.insert()
        .values(
            matchers=[str(m) for m in matchers],
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
            created_at=now,
        )
        .returning(*silences.c)
    )
    return _silence(result.one())


_ACTIVE = (
    sa.select(silences)
    .where(
        silences.c.starts_at <= sa.bindparam("now", type_=UTCDateTime),
        silences.c.ends_at > sa.bindparam("now", type_=UTCDateTime),
    )
    .order_by(silences.c.id)
)


def active(conn: Connection, now: datetime) -> list[Silence]:
    rows = conn.execute(_ACTIVE, {"now": now})
    return [_silence(row) for row in rows]


def list_all(conn: Connection, *, include_expired: bool, now: datetime) -> list[Silence]:
    query = sa.select(silences).order_by(silences.c.id.desc())
    if not include_expired:
        query = query.where(silences.c.ends_at > now)
    return [_silence(row) for row in conn.execute(query)]


def expire(conn: Connection, silence_id: int, now: datetime) -> bool:
    """End a silence now; False when there is no such silence or it had already ended."""
    result = conn.execute(
        silences.update().where(silences.c.id == silence_id, silences.c.ends_at > now).values(ends_at=now)
    )
    return result.rowcount > 0


class SilenceJSON(TypedDict):
    """A silence as the API and the CLI show it (times in ISO 8601)."""

    id: int
    matchers: list[str]
    starts_at: str
    ends_at: str
    created_by: str
    comment: str


def silence_json(silence: Silence) -> SilenceJSON:
    return {
        "id": silence.id,
        "matchers": [str(m) for m in silence.matchers],
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
    }
