"""The store's tables as of today's schema, the column type they keep times in, and the helpers
every store module uses on their rows (ids from outside, insert-if-absent, records as JSON).

A fresh database gets these tables whole; a database an earlier release wrote is brought to them by
store/migrations.py. To change the schema, change the tables here and append a migration there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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


MAX_ID = 2**31 - 1  # ids are INTEGER columns: 32-bit on PostgreSQL


def parse_id(raw: str) -> int | None:
    """A row id given from outside (a URL, a slash command, a Slack button), or None when it cannot be
    one: not a whole number, or out of the columns' range (which the database would reject)."""
    text = raw.strip().lstrip("#")
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
        return None  # the length first: int() refuses over 4,300 digits with a ValueError
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def insert_ignore(conn: Connection, table: sa.Table, values: dict[str, Any], *, on: list[str]) -> bool:
    """INSERT unless a row with the same ``on`` columns exists (or is being inserted by a concurrent
    transaction, which this waits for); True when this inserted it. Safe across replicas, where a
    failed plain INSERT would abort the whole PostgreSQL transaction."""
    dialect_insert: Any = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: with a RETURNING clause of its own (the primary key) psycopg reports -1.
    statement = (
        dialect_insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=on)
        .returning(sa.literal_column("1"))
    )
    return conn.execute(statement).first() is not None


def record_json(record: Any) -> dict[str, Any]:
    """A record dataclass as JSON-ready values (datetimes as ISO 8601)."""
    out: dict[str, Any] = {}
    for name in record.__dataclass_fields__:
        value = getattr(record, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # firing | resolved
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
    sa.Column("destinations", sa.JSON, nullable=False),  # where the trigger went
    sa.Column("suppressed_by", sa.Text),  # silence / inhibition, if any
    sa.Column("ends_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("acked_by", sa.Text),  # who acknowledged it (slack:U…, api)
    sa.Column("acked_at", UTCDateTime),
    sa.Column("resolved_by", sa.Text),  # set when resolved by hand, not by Alertmanager
    sa.Column("lead_id", sa.Integer),  # the earlier incident this re-fire continues
    sa.UniqueConstraint("fingerprint", "starts_at", name="uq_incidents_alert"),
)
sa.Index("ix_incidents_status", incidents.c.status, incidents.c.severity)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),  # trigger | resolve
    sa.Column("channel", sa.String(32), nullable=False),  # console | pagerduty | slack
    sa.Column("target", sa.Text, nullable=False),  # e.g. the Slack channel
    sa.Column("payload", sa.JSON, nullable=False),  # the Notification, as decided
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed | cancelled
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("lease_owner", sa.String(64)),  # the dispatcher instance holding it
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("hold", sa.Text),  # why a resolve waits (until next_attempt_at)
    sa.Column("fingerprint", sa.Text),  # the alert's: its episodes share a Slack message
)
sa.Index("ix_outbox_incident", outbox.c.incident_id, outbox.c.channel, outbox.c.status)
sa.Index("ix_outbox_fingerprint", outbox.c.fingerprint, outbox.c.channel, outbox.c.status)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("matchers", sa.JSON, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
sa.Index("ix_silences_ends", silences.c.ends_at)


slack_messages = sa.Table(
    "slack_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("target", sa.Text, nullable=False),  # the channel as configured (#alerts)
    sa.Column("channel_id", sa.Text, nullable=False),  # the channel ID Slack answered (C123)
    sa.Column("ts", sa.Text, nullable=False),  # the message to update in place
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("incident_id", "target", name="uq_slack_messages_incident"),
)
sa.Index("ix_slack_messages_fingerprint", slack_messages.c.fingerprint, slack_messages.c.target)


storms = sa.Table(
    "storms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_key", sa.Text, nullable=False),
    sa.Column("group_labels", sa.JSON, nullable=False),
    sa.Column("anchor_incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),  # alerts summarised so far
    sa.Column("destinations", sa.JSON, nullable=False),  # where the summary goes
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
)
sa.Index("ix_storms_group", storms.c.group_key, storms.c.resolved_at)
# One open storm per group: replicas starting one at once conflict, and the loser's ingest is retried
# (and joins the winner's storm) instead of sending a second summary.
sa.Index(
    "ux_storms_open",
    storms.c.group_key,
    unique=True,
    sqlite_where=storms.c.resolved_at.is_(None),
    postgresql_where=storms.c.resolved_at.is_(None),
)


runbook_runs = sa.Table(
    "runbook_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("runbook", sa.Text, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),  # cli:<user> | slack:<user> | alert:<id> | undo:<run>
    # RunStatus: queued|pending|approved|running, then planned|succeeded|noop|failed|rejected|cancelled|expired
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("plan", sa.JSON, nullable=False),  # per step: what it would change (before → after)
    sa.Column("applied", sa.JSON, nullable=False),  # per applied step: the state it changed, for undo
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("undo_of", sa.Integer),
    sa.Column("automation", sa.Text),  # the automation that asked for it, if any
    sa.Column("target_key", sa.Text),  # automation + params: what the cooldown keys on
    sa.Column("approvals", sa.JSON),  # who approved so far (two-person rule)
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("heartbeat_at", UTCDateTime),  # a running run's process is alive
)
sa.Index("ix_runbook_runs_cooldown", runbook_runs.c.target_key, runbook_runs.c.started_at)
sa.Index("ix_runbook_runs_status", runbook_runs.c.status)

runbook_locks = sa.Table(
    "runbook_locks",
    metadata,
    sa.Column("target", sa.Text, primary_key=True),  # e.g. virtualservice ns/name
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
)


change_events = sa.Table(
    "change_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Text, unique=True),  # the sender's id, for idempotency
    sa.Column("kind", sa.String(32), nullable=False),  # deployment|config_change|feature_flag|traffic_shift
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("namespace", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("links", sa.JSON, nullable=False),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # api | alertmanager | kubernetes | runbook
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("target", sa.Text, nullable=False, server_default=""),  # virtualservice/NAME | deployment/NAME | ""
)
sa.Index("ix_change_events_service", change_events.c.service, change_events.c.namespace, change_events.c.timestamp)


heartbeats = sa.Table(
    "heartbeats",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),  # the Watchdog alertname
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("incident_id", sa.Integer),  # the open "pipeline broken" page, if any
)


decisions = sa.Table(
    "decisions",
    metadata,  # what shadow mode would have done
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # notify | runbook
    sa.Column("summary", sa.Text, nullable=False),  # "would page pagerduty", "would run ..."
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


kube_objects = sa.Table(
    "kube_objects",
    metadata,  # what the Kubernetes watch last saw
    sa.Column("resource", sa.String(32), primary_key=True),  # deployments | virtualservices
    sa.Column("namespace", sa.String(253), primary_key=True),
    sa.Column("name", sa.String(253), primary_key=True),
    sa.Column("service", sa.Text, nullable=False),  # whose alerts say whether it is healthy
    sa.Column("resource_version", sa.Text, nullable=False),
    sa.Column("state", sa.JSON, nullable=False),  # images / weights: what a change is judged on
    sa.Column("state_since", UTCDateTime, nullable=False),  # when this state was first seen
    sa.Column("seen_at", UTCDateTime, nullable=False),
    sa.Column("good_state", sa.JSON),  # the last state that stayed healthy (weights)
    sa.Column("good_at", UTCDateTime),
)


incident_notes = sa.Table(
    "incident_notes",
    metadata,  # an incident's history, in words
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # suppressed | held | continued | ...
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)
sa.Index("ix_incident_notes_incident", incident_notes.c.incident_id, incident_notes.c.id)


rejected_alerts = sa.Table(
    "rejected_alerts",
    metadata,  # alerts that could not be processed on their own, kept so that they can be found
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),  # the same alert delivered twice: one row
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),  # its JSON as received, cut to a bounded size
    sa.Column("receiver", sa.Text, nullable=False),
    sa.Column("group_key", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
)


# Schema v15: indexed history, readiness probe, retention.
# The firing incidents of a batch's services, looked up per batch: by (service, status), so the cost
# does not grow with resolved history.
sa.Index("ix_incidents_service_status", incidents.c.service, incidents.c.status)
# Retention finds resolved incidents by when they were resolved.
sa.Index("ix_incidents_resolved", incidents.c.resolved_at)
# Pending outbox rows only (delivered ones stay out of it): claims walk it in id order, and the next
# wake-up is its smallest due time. The queries spell 'pending' as a literal so both planners match.
_OUTBOX_PENDING = outbox.c.status == sa.literal_column("'pending'")
sa.Index(
    "ix_outbox_pending_claim",
    outbox.c.channel,
    outbox.c.id,
    sqlite_where=_OUTBOX_PENDING,
    postgresql_where=_OUTBOX_PENDING,
)
sa.Index(
    "ix_outbox_pending_due",
    outbox.c.channel,
    sa.func.coalesce(outbox.c.lease_until, outbox.c.next_attempt_at),
    sqlite_where=_OUTBOX_PENDING,
    postgresql_where=_OUTBOX_PENDING,
)
sa.Index("ix_runbook_runs_started", runbook_runs.c.started_at)
sa.Index("ix_change_events_created", change_events.c.created_at)
sa.Index("ix_decisions_incident", decisions.c.incident_id)

store_probe = sa.Table(
    "store_probe",
    metadata,  # one row, rewritten by the readiness check: proof that a commit goes through
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),
)

retention_state = sa.Table(
    "retention_state",
    metadata,  # where the retention job got to, kept across restarts (e.g. outbox_packed_to)
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)


slack_requests = sa.Table(
    "slack_requests",
    metadata,  # signed Slack requests seen within the signing window: a replay to any replica is refused
    sa.Column("signature", sa.String(128), primary_key=True),  # v0=HMAC of timestamp and body
    sa.Column("sent_at", UTCDateTime, nullable=False),  # its X-Slack-Request-Timestamp
)
sa.Index("ix_slack_requests_sent", slack_requests.c.sent_at)

oncall_overrides = sa.Table(
    "oncall_overrides",
    metadata,  # someone covering a schedule for a while (/alertbot oncall override); config ones are not stored
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("schedule", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(32), nullable=False),  # the Slack user who covers
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
sa.Index("ix_oncall_overrides_schedule_end", oncall_overrides.c.schedule, oncall_overrides.c.ends_at)

oncall_handoffs = sa.Table(
    "oncall_handoffs",
    metadata,  # each shift seen per schedule: a shift is announced once, by the replica that records it
    sa.Column("schedule", sa.String(64), primary_key=True),
    sa.Column("shift_key", sa.String(128), primary_key=True),  # "USER@START" of the shift
    sa.Column("seen_at", UTCDateTime, nullable=False),
)

pagerduty_events = sa.Table(
    "pagerduty_events",
    metadata,  # PagerDuty webhook events taken in: a redelivery is not applied twice
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("pd_incident_id", sa.String(64), nullable=False),  # PagerDuty's incident id (a note names only it)
    sa.Column("incident_id", sa.Integer),  # alertbot's, when the event matched one
)
sa.Index("ix_pagerduty_events_incident", pagerduty_events.c.pd_incident_id)
