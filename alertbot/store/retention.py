"""Retention: old history is deleted in the background, in small batches, so the store stays small.

Every ``retention.interval`` (default 5m) one pass deletes:

- incidents resolved more than ``retention.incidents`` ago (default 30d), a whole chain at a time
  (an incident and the re-fires that continue it), with their outbox rows, Slack message references,
  notes, shadow-mode decisions and the storms they anchored; a chain with an episode still firing,
  resolved more recently, anchoring an open storm, or being the dead man's switch's open page stays;
- silences that ended more than ``retention.incidents`` ago;
- runbook runs started more than ``retention.audit`` ago (default 365d; never a run still running
  or holding a target lock), and change events recorded more than ``retention.audit`` ago.

Each batch is one short write transaction (at most ``BATCH`` chains or rows), so ingest interleaves
with a long clean-up instead of waiting for it. Replicas sharing a PostgreSQL store take turns per
batch through an advisory lock (a replica that does not get it skips the batch): they never delete
the same rows at once nor deadlock on them.

Delivered outbox rows drop their payload at delivery (``outbox.mark_delivered_many``): only the
columns the incident timeline shows (event, channel, target, status, times, attempts, error) stay.
On SQLite each pass then packs the settled rows densely (``compact_outbox``), so the space the
payloads took is reused at once rather than when retention deletes the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from alertbot.errors import AlertbotError
from alertbot.store.engine import Store
from alertbot.store.schema import (
    UTCDateTime,
    change_events,
    decisions,
    heartbeats,
    incident_notes,
    incidents,
    insert_ignore,
    oncall_overrides,
    outbox,
    pagerduty_events,
    rejected_alerts,
    retention_state,
    runbook_locks,
    runbook_runs,
    silences,
    slack_messages,
    storms,
)

log = structlog.get_logger("alertbot.retention")

BATCH = 200
RETENTION_LOCK = 0x726574656E  # "reten": the advisory lock replicas take per batch on PostgreSQL

_STORED_TIME = UTCDateTime()
_episode = incidents.alias("episode")
# Chain leads resolved before the cutoff, oldest first, after a (resolved_at, id) cursor, whose every
# episode is resolved before the cutoff too.
_OLD_LEADS = (
    sa.select(incidents.c.id, incidents.c.resolved_at)
    .where(
        incidents.c.lead_id.is_(None),
        incidents.c.status == "resolved",
        incidents.c.resolved_at < sa.bindparam("cutoff"),
        sa.tuple_(incidents.c.resolved_at, incidents.c.id)
        > sa.tuple_(sa.bindparam("after_at", type_=sa.String), sa.bindparam("after_id", type_=sa.Integer)),
        ~sa.select(_episode.c.id)
        .where(
            _episode.c.lead_id == incidents.c.id,
            sa.or_(
                _episode.c.status != "resolved",
                _episode.c.resolved_at.is_(None),
                _episode.c.resolved_at >= sa.bindparam("cutoff"),
            ),
        )
        .exists(),
    )
    .order_by(incidents.c.resolved_at, incidents.c.id)
    .limit(sa.bindparam("limit"))
)
_MEMBERS = sa.select(incidents.c.id, incidents.c.lead_id).where(
    incidents.c.lead_id.in_(sa.bindparam("leads", expanding=True))
)
_PINNED = sa.union(
    sa.select(storms.c.anchor_incident_id.label("id")).where(
        storms.c.resolved_at.is_(None), storms.c.anchor_incident_id.in_(sa.bindparam("ids", expanding=True))
    ),
    sa.select(heartbeats.c.incident_id.label("id")).where(
        heartbeats.c.incident_id.in_(sa.bindparam("ids_too", expanding=True))
    ),
)
_CHILDREN = [(table, table.c.incident_id) for table in (outbox, slack_messages, incident_notes, decisions)] + [
    (storms, storms.c.anchor_incident_id)
]
_DELETE_CHILDREN = [
    table.delete().where(column.in_(sa.bindparam("ids", expanding=True))) for table, column in _CHILDREN
]
_DELETE_INCIDENTS = incidents.delete().where(incidents.c.id.in_(sa.bindparam("ids", expanding=True)))


def _batch_delete(table: sa.Table, where: sa.ColumnElement[bool]) -> sa.Delete:
    """DELETE at most ``limit`` rows of ``table`` matching ``where``, oldest ids first."""
    ids = sa.select(table.c.id).where(where).order_by(table.c.id).limit(sa.bindparam("limit")).scalar_subquery()
    return table.delete().where(table.c.id.in_(ids))


_DELETE_SILENCES = _batch_delete(silences, silences.c.ends_at < sa.bindparam("cutoff"))
_DELETE_RUNS = _batch_delete(
    runbook_runs,
    sa.and_(
        runbook_runs.c.started_at < sa.bindparam("cutoff"),
        runbook_runs.c.status != "running",
        runbook_runs.c.id.not_in(sa.select(runbook_locks.c.run_id)),
    ),
)
_DELETE_CHANGES = _batch_delete(change_events, change_events.c.created_at < sa.bindparam("cutoff"))
_DELETE_REJECTED = _batch_delete(rejected_alerts, rejected_alerts.c.received_at < sa.bindparam("cutoff"))
_DELETE_OVERRIDES = _batch_delete(oncall_overrides, oncall_overrides.c.ends_at < sa.bindparam("cutoff"))
_DELETE_PAGERDUTY_EVENTS = pagerduty_events.delete().where(
    pagerduty_events.c.event_id.in_(
        sa.select(pagerduty_events.c.event_id)
        .where(pagerduty_events.c.occurred_at < sa.bindparam("cutoff"))
        .order_by(pagerduty_events.c.occurred_at)
        .limit(sa.bindparam("limit"))
        .scalar_subquery()
    )
)


def _our_turn(conn: Connection) -> bool:
    """PostgreSQL: this transaction holds the retention lock (until it ends); SQLite: always."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RETENTION_LOCK}).scalar())


@dataclass
class Cursor:
    """Where a pass over old incidents has got to (chains kept for a reason are not looked at again):
    the last lead's resolved_at as stored (text; "" sorts first) and id."""

    resolved_at: str = ""
    id: int = 0
    done: bool = False


def purge_incidents(conn: Connection, *, cutoff: datetime, cursor: Cursor, limit: int = BATCH) -> int | None:
    """Delete up to ``limit`` old chains after ``cursor`` (advanced); returns the incidents deleted, or
    None when another replica has the turn."""
    if not _our_turn(conn):
        return None
    rows = conn.execute(
        _OLD_LEADS, {"cutoff": cutoff, "after_at": cursor.resolved_at, "after_id": cursor.id, "limit": limit}
    ).all()
    if len(rows) < limit:
        cursor.done = True
    if not rows:
        return 0
    cursor.resolved_at, cursor.id = (
        _STORED_TIME.process_bind_param(rows[-1].resolved_at, conn.dialect) or "",
        rows[-1].id,
    )
    chains: dict[int, list[int]] = {row.id: [row.id] for row in rows}
    for member in conn.execute(_MEMBERS, {"leads": list(chains)}):
        chains[member.lead_id].append(member.id)
    every = [i for ids in chains.values() for i in ids]
    pinned = {row.id for row in conn.execute(_PINNED, {"ids": every, "ids_too": every})}
    doomed = [i for ids in chains.values() if pinned.isdisjoint(ids) for i in ids]
    if not doomed:
        return 0
    for statement in _DELETE_CHILDREN:
        conn.execute(statement, {"ids": doomed})
    return int(conn.execute(_DELETE_INCIDENTS, {"ids": doomed}).rowcount)


def purge_rows(conn: Connection, statement: sa.Delete, *, cutoff: datetime, limit: int = BATCH) -> int | None:
    if not _our_turn(conn):
        return None
    return int(conn.execute(statement, {"cutoff": cutoff, "limit": limit}).rowcount)


_OUTBOX_AFTER = (
    sa.select(outbox.c.id, outbox.c.status)
    .where(outbox.c.id > sa.bindparam("after"))
    .order_by(outbox.c.id)
    .limit(sa.bindparam("limit"))
)


_PACKED_TO = sa.select(retention_state.c.value).where(retention_state.c.name == "outbox_packed_to")
_SET_PACKED_TO = (
    retention_state.update()
    .where(retention_state.c.name == "outbox_packed_to")
    .values(value=sa.bindparam("value", type_=sa.Integer))
)


def compact_outbox(conn: Connection, *, limit: int = BATCH) -> int:
    """SQLite: rewrite the next run of settled outbox rows (delivered, failed, cancelled — up to the
    first pending one) so they pack densely; returns how many.

    A delivered row drops its payload in place, but SQLite only ever appends new rows at the end of
    the table: the space the payloads left inside older pages would stay unused until retention
    deleted those rows. Deleting and re-inserting the same rows, with the same ids and values, in one
    transaction frees those pages and packs the rows into as few as they need. Nothing else can see
    the difference. PostgreSQL reuses such space by itself (autovacuum and its free space map).
    Where it got to is kept in ``retention_state`` (``outbox_packed_to``), so a restart goes on from
    there."""
    after = conn.execute(_PACKED_TO).scalar()
    if after is None:
        insert_ignore(conn, retention_state, {"name": "outbox_packed_to", "value": 0}, on=["name"])
        after = 0
    rows = conn.execute(_OUTBOX_AFTER, {"after": after, "limit": limit}).all()
    settled = []
    for row in rows:
        if row.status == "pending":
            break
        settled.append(row.id)
    if not settled:
        return 0
    low, high = settled[0], settled[-1]
    conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS outbox_rewrite AS SELECT * FROM outbox WHERE 0")
    conn.exec_driver_sql("INSERT INTO temp.outbox_rewrite SELECT * FROM outbox WHERE id BETWEEN ? AND ?", (low, high))
    conn.exec_driver_sql("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (low, high))
    conn.exec_driver_sql("INSERT INTO outbox SELECT * FROM temp.outbox_rewrite ORDER BY id")
    conn.exec_driver_sql("DELETE FROM temp.outbox_rewrite")
    conn.execute(_SET_PACKED_TO, {"value": high})
    return len(settled)


@dataclass
class RetentionPolicy:
    incidents: timedelta = timedelta(days=30)
    audit: timedelta = timedelta(days=365)
    interval: timedelta = timedelta(minutes=5)


@dataclass
class PassResult:
    deleted: dict[str, int] = field(default_factory=dict)


class RetentionJob:
    """Runs ``run_pass`` every ``policy.interval`` in a task it owns (cancelled by ``stop``)."""

    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy,
        *,
        clock: Callable[[], datetime],
        pause: float = 0.01,
        batch: int = BATCH,
    ) -> None:
        self._store = store
        self._batch = batch
        self._policy = policy
        self._clock = clock
        self._pause = pause  # between batches: lets other writes in
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                result = await self.run_pass()
                if any(result.deleted.values()):
                    log.info("retention_pass", **result.deleted)
            except AlertbotError as exc:
                log.warning("retention_unavailable", error=exc.message)
            except Exception:
                log.exception("retention_failed")
            await asyncio.sleep(self._policy.interval.total_seconds())

    async def run_pass(self) -> PassResult:
        """One pass: every kind of old row, batch by batch, until none is left (or another replica
        has the turn)."""
        now = self._clock()
        result = PassResult()
        cursor = Cursor()
        total = 0
        while not cursor.done:
            deleted = await self._store.write(
                purge_incidents, cutoff=now - self._policy.incidents, cursor=cursor, limit=self._batch
            )
            if deleted is None:
                break
            total += deleted
            await asyncio.sleep(self._pause)
        result.deleted["incidents"] = total
        for name, statement, keep in (
            ("silences", _DELETE_SILENCES, self._policy.incidents),
            ("rejected_alerts", _DELETE_REJECTED, self._policy.incidents),
            ("oncall_overrides", _DELETE_OVERRIDES, self._policy.incidents),
            ("pagerduty_events", _DELETE_PAGERDUTY_EVENTS, self._policy.incidents),
            ("runbook_runs", _DELETE_RUNS, self._policy.audit),
            ("change_events", _DELETE_CHANGES, self._policy.audit),
        ):
            total = 0
            while True:
                deleted = await self._store.write(purge_rows, statement, cutoff=now - keep, limit=self._batch)
                total += deleted or 0
                if deleted is None or deleted < self._batch:
                    break
                await asyncio.sleep(self._pause)
            result.deleted[name] = total
        if self._store.is_sqlite:
            total = 0
            while (packed := await self._store.write(compact_outbox, limit=self._batch)) > 0:
                total += packed
                await asyncio.sleep(self._pause)
            result.deleted["outbox_rows_packed"] = total
        return result
