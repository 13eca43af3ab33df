"""Tables and versioned migrations (applied in order at start-up, each once).

To change the schema, append a migration; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes stored as fixed-width ISO-8601 text, so they sort and compare as text
    the same on SQLite and Postgres."""

    impl = sa.String(27)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"

    def process_result_value(self, value: str | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return datetime.fromisoformat(value.removesuffix("Z")).replace(tzinfo=UTC)


metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),            # firing | resolved
    sa.Column("alertname", sa.Text, nullable=False),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("namespace", sa.Text, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("sli", sa.String(32)),
    sa.Column("value", sa.Float),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("annotations", sa.JSON, nullable=False),
    sa.Column("generator_url", sa.Text, nullable=False),
    sa.Column("group_key", sa.Text, nullable=False),
    sa.Column("destinations", sa.JSON, nullable=False),            # where the trigger went
    sa.Column("suppressed_by", sa.Text),                           # silence / inhibition, if any
    sa.Column("ends_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.UniqueConstraint("fingerprint", "starts_at", name="uq_incidents_alert"),
)
sa.Index("ix_incidents_status", incidents.c.status, incidents.c.severity)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),             # trigger | resolve
    sa.Column("channel", sa.String(32), nullable=False),           # console | pagerduty | slack
    sa.Column("target", sa.Text, nullable=False),                  # e.g. the Slack channel
    sa.Column("payload", sa.JSON, nullable=False),                 # the Notification, as decided
    sa.Column("status", sa.String(16), nullable=False),            # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("lease_owner", sa.String(64)),                       # the dispatcher instance holding it
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
)
sa.Index("ix_outbox_due", outbox.c.status, outbox.c.channel, outbox.c.next_attempt_at)
sa.Index("ix_outbox_incident", outbox.c.incident_id, outbox.c.channel, outbox.c.status)

silences = sa.Table(
    "silences", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("matchers", sa.JSON, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
sa.Index("ix_silences_ends", silences.c.ends_at)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[incidents, outbox, silences])


Migration = tuple[int, str, Callable[[Connection], Any]]

MIGRATIONS: list[Migration] = [
    (1, "incidents, outbox, silences", _v1),
]


def migrate(conn: Connection, now: datetime) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied."""
    schema_migrations.create(conn, checkfirst=True)
    done = {row[0] for row in conn.execute(sa.select(schema_migrations.c.version))}
    applied = []
    for version, description, step in MIGRATIONS:
        if version in done:
            continue
        step(conn)
        conn.execute(schema_migrations.insert().values(version=version, description=description, applied_at=now))
        applied.append(version)
    newest = max(done, default=0)
    if newest > MIGRATIONS[-1][0]:
        raise RuntimeError(f"the database schema is version {newest}, newer than this alertbot knows "
                           f"({MIGRATIONS[-1][0]}): upgrade alertbot or restore a matching backup")
    return applied
