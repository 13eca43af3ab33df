"""Versioned migrations, applied in order at start-up, each once; the store records which it has seen.

A fresh database gets today's tables (store/schema.py) whole from ``_v1``, so later migrations must be
no-ops where their change is already there (see ``_add_columns``). To change the schema, append a
migration here and update the table definitions in store/schema.py; never edit a migration that has
shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.errors import StoreTooNew
from alertbot.store.schema import (
    change_events,
    decisions,
    heartbeats,
    incident_notes,
    incidents,
    kube_objects,
    metadata,
    oncall_handoffs,
    oncall_overrides,
    outbox,
    pagerduty_events,
    rejected_alerts,
    retention_state,
    runbook_locks,
    runbook_runs,
    schema_migrations,
    silences,
    slack_messages,
    slack_requests,
    store_probe,
    storms,
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[incidents, outbox, silences])


def _v2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[slack_messages, storms])
    # Plain DDL: an sa.Index here would attach itself to the table and be created by _v1 too.
    conn.exec_driver_sql("CREATE INDEX ix_incidents_group ON incidents (group_key, created_at)")
    conn.exec_driver_sql("CREATE INDEX ix_incidents_service ON incidents (service, namespace, status)")


def _v3(conn: Connection) -> None:
    metadata.create_all(conn, tables=[runbook_runs, runbook_locks])


def _add_columns(conn: Connection, table: str, columns: dict[str, str]) -> None:
    """ADD COLUMN for each one the table lacks (tables created by _v1 already have today's columns)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(table)}
    for name, ddl_type in columns.items():
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl_type}")


def _v4(conn: Connection) -> None:
    _add_columns(conn, "incidents", {"acked_by": "TEXT", "acked_at": "VARCHAR(27)", "resolved_by": "TEXT"})


def _v5(conn: Connection) -> None:
    metadata.create_all(conn, tables=[change_events])


def _v6(conn: Connection) -> None:
    metadata.create_all(conn, tables=[heartbeats])


def _v7(conn: Connection) -> None:
    _add_columns(conn, "runbook_runs", {"approvals": "JSON"})


def _v8(conn: Connection) -> None:
    metadata.create_all(conn, tables=[decisions])


def _v9(conn: Connection) -> None:
    _add_columns(conn, "incidents", {"lead_id": "INTEGER"})
    conn.exec_driver_sql("CREATE INDEX ix_incidents_lead ON incidents (lead_id)")  # an incident's chain
    _add_columns(conn, "outbox", {"hold": "TEXT"})
    metadata.create_all(conn, tables=[incident_notes])


def _v10(conn: Connection) -> None:
    _add_columns(conn, "change_events", {"target": "TEXT NOT NULL DEFAULT ''"})
    metadata.create_all(conn, tables=[kube_objects])


def _v11(conn: Connection) -> None:
    _add_columns(conn, "outbox", {"fingerprint": "TEXT"})
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_outbox_fingerprint ON outbox (fingerprint, channel, status)")
    conn.exec_driver_sql(
        "UPDATE outbox SET fingerprint = (SELECT fingerprint FROM incidents "
        "WHERE incidents.id = outbox.incident_id) WHERE status = 'pending' AND fingerprint IS NULL"
    )


def _v12(conn: Connection) -> None:
    # Replicas that already raced left two open storms for a group: the newer ones end here (their
    # summaries resolve when their last member does), so the index can be built.
    conn.exec_driver_sql(
        "UPDATE storms SET resolved_at = started_at WHERE resolved_at IS NULL AND id > "
        "(SELECT MIN(id) FROM storms AS first WHERE first.group_key = storms.group_key "
        "AND first.resolved_at IS NULL)"
    )
    conn.exec_driver_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_storms_open ON storms (group_key) WHERE resolved_at IS NULL"
    )


def _v13(conn: Connection) -> None:
    _add_columns(conn, "runbook_runs", {"heartbeat_at": "VARCHAR(27)"})


def _v14(conn: Connection) -> None:
    metadata.create_all(conn, tables=[rejected_alerts])


def _v15(conn: Connection) -> None:
    for ddl in (
        "CREATE INDEX IF NOT EXISTS ix_incidents_service_status ON incidents (service, status)",
        "CREATE INDEX IF NOT EXISTS ix_incidents_resolved ON incidents (resolved_at)",
        "CREATE INDEX IF NOT EXISTS ix_outbox_pending_claim ON outbox (channel, id) WHERE status = 'pending'",
        "CREATE INDEX IF NOT EXISTS ix_outbox_pending_due ON outbox "
        "(channel, (coalesce(lease_until, next_attempt_at))) WHERE status = 'pending'",
        "CREATE INDEX IF NOT EXISTS ix_runbook_runs_started ON runbook_runs (started_at)",
        "CREATE INDEX IF NOT EXISTS ix_change_events_created ON change_events (created_at)",
        "CREATE INDEX IF NOT EXISTS ix_decisions_incident ON decisions (incident_id)",
        # Superseded by the two partial indexes: with it, SQLite's planner took a range of due times
        # over all pending rows, then sorted them, instead of walking the pending rows in id order.
        "DROP INDEX IF EXISTS ix_outbox_due",
    ):
        conn.exec_driver_sql(ddl)
    metadata.create_all(conn, tables=[store_probe, retention_state])


def _v16(conn: Connection) -> None:
    metadata.create_all(conn, tables=[slack_requests])


def _v17(conn: Connection) -> None:
    # Inhibition sources by service and severity (store/incidents.py firing_sources): a storm of
    # warnings does not make each inhibition check read the others.
    conn.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_incidents_firing_sources ON incidents (service, severity, namespace, status)"
    )
    # A storm's members by status (is one still firing? how many resolved?) and its newest members
    # (store/storms.py), without reading every member.
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_incidents_group_status ON incidents (group_key, status)")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_incidents_group_id ON incidents (group_key, id)")


def _v18(conn: Connection) -> None:
    metadata.create_all(conn, tables=[oncall_overrides, pagerduty_events])


def _v19(conn: Connection) -> None:
    metadata.create_all(conn, tables=[oncall_handoffs])


Migration = tuple[int, str, Callable[[Connection], Any]]

MIGRATIONS: list[Migration] = [
    (1, "incidents, outbox, silences", _v1),
    (2, "slack message references, alert storms, incidents by group and by service", _v2),
    (3, "runbook audit log and per-target locks", _v3),
    (4, "incidents: acknowledged / resolved by hand", _v4),
    (5, "change events (deployments, config changes)", _v5),
    (6, "dead man's switch", _v6),
    (7, "runbook run approvals (two-person rule)", _v7),
    (8, "shadow-mode decisions", _v8),
    (9, "incident chains (flap damping, resolve hysteresis), held resolves, incident history", _v9),
    (10, "Kubernetes watch state, last-known-good weights, change targets", _v10),
    (11, "outbox rows ordered across an alert's episodes", _v11),
    (12, "one open storm per group", _v12),
    (13, "runbook run heartbeats", _v13),
    (14, "rejected alerts", _v14),
    (15, "indexed history (firing by service, pending outbox), readiness probe, retention indexes", _v15),
    (16, "Slack request replay protection shared by replicas", _v16),
    (17, "inhibition sources by service and severity; storm members by status and by id", _v17),
    (18, "on-call overrides; PagerDuty webhook events", _v18),
    (19, "on-call hand-offs announced", _v19),
]


MIGRATION_LOCK = 0x616C657274  # "alert": the PostgreSQL advisory lock replicas take to migrate one at a time


def migrate(conn: Connection, now: datetime) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied. Replicas starting together
    on PostgreSQL take turns (an advisory lock held until the transaction ends); SQLite's write lock
    does the same there."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    schema_migrations.create(conn, checkfirst=True)
    done = {row[0] for row in conn.execute(sa.select(schema_migrations.c.version))}
    # Before anything runs: a store a newer alertbot migrated is left exactly as that release wrote it.
    newest, known = max(done, default=0), max(version for version, _, _ in MIGRATIONS)
    if newest > known:
        raise StoreTooNew(
            f"the store's schema is version {newest}, newer than this alertbot knows ({known}): "
            "upgrade alertbot, or restore a backup taken before the newer release migrated it"
        )
    applied = []
    for version, description, step in MIGRATIONS:
        if version in done:
            continue
        step(conn)
        conn.execute(schema_migrations.insert().values(version=version, description=description, applied_at=now))
        applied.append(version)
    return applied
