"""The runbook audit log (every run, dry-runs included) and per-target locks.

Several replicas share these rows: every change of a run's status is a conditional update (``WHERE
status IN (what this step expects)``) whose row count says whether this caller made it. A caller that
finds the run moved on (approved, cancelled, taken by another replica) changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.domain.plans import PlanEntry
from alertbot.store.schema import insert_ignore, record_json, runbook_locks, runbook_runs

# A running run's process records a heartbeat this often; a run without one for RUN_STALE_AFTER is
# taken for interrupted (its process died): it is failed and its locks released.
RUN_HEARTBEAT = timedelta(seconds=10)
RUN_STALE_AFTER = timedelta(seconds=60)


class RunStatus(StrEnum):
    """A run's life: requested (``queued`` by an automation, ``pending`` approval → ``approved``),
    ``running``, then one end state. Runs that are only planned end at ``planned``."""

    PLANNED = "planned"  # dry run: nothing was changed
    QUEUED = "queued"  # an automation asked for it; run now
    PENDING = "pending"  # awaits approval
    APPROVED = "approved"  # approved; about to run
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    NOOP = "noop"  # nothing to change
    FAILED = "failed"
    REJECTED = "rejected"  # refused before changing anything (target lock held, outside its targets)
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # not approved in time


# Where a run may end without having run (planning failed, dry run, noop, rejected).
NOT_STARTED = (RunStatus.QUEUED, RunStatus.APPROVED)


@dataclass(frozen=True)
class RunRecord:
    id: int
    runbook: str
    params: dict[str, str]
    trigger: str
    status: RunStatus
    plan: list[PlanEntry]
    applied: list[PlanEntry]  # the steps carried out, in order
    result: str
    undo_of: int | None
    automation: str | None
    target_key: str | None
    approvals: list[str] | None
    started_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return record_json(self)


def _record(row: Any) -> RunRecord:
    values = row._asdict()
    return RunRecord(**{**values, "status": RunStatus(values["status"])})


def start(
    conn: Connection,
    *,
    runbook: str,
    params: dict[str, str],
    trigger: str,
    status: RunStatus,
    plan: list[dict[str, Any]],
    undo_of: int | None,
    now: datetime,
    result: str = "",
) -> int:
    """Audit a run; a run that ends here (planned, noop) passes its ``result`` too."""
    inserted = conn.execute(
        runbook_runs.insert().values(
            runbook=runbook,
            params=params,
            trigger=trigger,
            status=status,
            plan=plan,
            applied=[],
            result=result,
            undo_of=undo_of,
            started_at=now,
            finished_at=now if status != RunStatus.RUNNING else None,
            heartbeat_at=now if status == RunStatus.RUNNING else None,
        )
    )
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def queue(
    conn: Connection,
    *,
    runbook: str,
    params: dict[str, str],
    trigger: str,
    automation: str | None,
    target_key: str,
    status: RunStatus | str,
    now: datetime,
    result: str = "",
    plan: list[dict[str, Any]] | None = None,
) -> int:
    """An automation's durable request to run (``queued``: run it now; ``pending``: awaits approval)."""
    inserted = conn.execute(
        runbook_runs.insert().values(
            runbook=runbook,
            params=params,
            trigger=trigger,
            status=RunStatus(status),
            plan=plan or [],
            applied=[],
            result=result,
            automation=automation,
            target_key=target_key,
            started_at=now,
        )
    )
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def last_for_target(conn: Connection, target_key: str, since: datetime) -> RunRecord | None:
    """The newest automation run for this target since ``since`` (the cooldown window)."""
    row = conn.execute(
        sa.select(runbook_runs)
        .where(runbook_runs.c.target_key == target_key, runbook_runs.c.started_at >= since)
        .order_by(runbook_runs.c.id.desc())
        .limit(1)
    ).first()
    return _record(row) if row else None


def queued(conn: Connection) -> list[RunRecord]:
    rows = conn.execute(
        sa.select(runbook_runs).where(runbook_runs.c.status == RunStatus.QUEUED).order_by(runbook_runs.c.id)
    )
    return [_record(row) for row in rows]


def pending(conn: Connection) -> list[RunRecord]:
    """Runs awaiting approval, oldest first."""
    rows = conn.execute(sa.select(runbook_runs).where(runbook_runs.c.status == "pending").order_by(runbook_runs.c.id))
    return [RunRecord(**row._asdict()) for row in rows]


def mark_running(
    conn: Connection, run_id: int, *, plan: list[dict[str, Any]], params: dict[str, str], now: datetime
) -> bool:
    """A queued run starts (False: it was not queued any more — another replica took it)."""
    result = conn.execute(
        runbook_runs.update()
        .where(runbook_runs.c.id == run_id, runbook_runs.c.status.in_(NOT_STARTED))
        .values(status=RunStatus.RUNNING, plan=plan, params=params, started_at=now, heartbeat_at=now)
    )
    return result.rowcount > 0


def beat(conn: Connection, run_id: int, now: datetime) -> None:
    """The process carrying out a running run is alive (see ``RUN_STALE_AFTER``)."""
    conn.execute(
        runbook_runs.update()
        .where(runbook_runs.c.id == run_id, runbook_runs.c.status == RunStatus.RUNNING)
        .values(heartbeat_at=now)
    )


def finish(
    conn: Connection,
    run_id: int,
    *,
    expect: Collection[RunStatus],
    status: RunStatus,
    applied: list[dict[str, Any]],
    result: str,
    now: datetime,
    plan: list[dict[str, Any]] | None = None,
    params: dict[str, str] | None = None,
) -> bool:
    """End a run that is in one of the ``expect`` states; False (nothing written) when it is not — it
    moved on meanwhile (another replica took it, cancelled it, or ended it)."""
    statement = (
        runbook_runs.update()
        .where(runbook_runs.c.id == run_id, runbook_runs.c.status.in_(list(expect)))
        .values(status=status, applied=applied, result=result, finished_at=now)
    )
    if plan is not None:
        statement = statement.values(plan=plan)
    if params is not None:
        statement = statement.values(params=params)
    done = conn.execute(statement)
    return done.rowcount > 0


def get(conn: Connection, run_id: int) -> RunRecord | None:
    row = conn.execute(sa.select(runbook_runs).where(runbook_runs.c.id == run_id)).first()
    return _record(row) if row else None


def for_incidents(conn: Connection, incident_ids: list[int]) -> list[RunRecord]:
    """Runs an alert asked for (their trigger is ``alert:ID`` or ``alert:ID automation:NAME``)."""
    if not incident_ids:
        return []
    wanted = sa.or_(
        *[
            sa.or_(runbook_runs.c.trigger == f"alert:{i}", runbook_runs.c.trigger.startswith(f"alert:{i} "))
            for i in incident_ids
        ]
    )
    return [_record(row) for row in conn.execute(sa.select(runbook_runs).where(wanted).order_by(runbook_runs.c.id))]


def history(conn: Connection, limit: int = 100) -> list[RunRecord]:
    rows = conn.execute(sa.select(runbook_runs).order_by(runbook_runs.c.id.desc()).limit(limit))
    return [_record(row) for row in rows]


def lock(conn: Connection, targets: list[str], run_id: int, now: datetime) -> str | None:
    """Take every target's lock for ``run_id``; returns a held target's description instead if one is
    taken (then none is taken: the caller's transaction rolls back). A lock whose run's process stopped
    beating is released first: a crashed replica does not keep the on-call from acting."""

    def take(target: str) -> bool:
        return insert_ignore(
            conn, runbook_locks, {"target": target, "run_id": run_id, "acquired_at": now}, on=["target"]
        )

    for target in targets:
        if take(target):
            continue
        held = conn.execute(sa.select(runbook_locks.c.run_id).where(runbook_locks.c.target == target)).first()
        if held is None:
            return target
        if recover_interrupted(conn, now=now, run_ids=[held.run_id]) and take(target):
            continue  # the holder's process had died: its run is failed, its locks released
        return f"{target} (run {held.run_id})"
    return None


def unlock(conn: Connection, run_id: int) -> None:
    conn.execute(runbook_locks.delete().where(runbook_locks.c.run_id == run_id))


def recover_interrupted(conn: Connection, *, now: datetime, run_ids: list[int] | None = None) -> list[int]:
    """Runs a process that died left behind, with no heartbeat for ``RUN_STALE_AFTER``: ``running``
    ones are failed and their locks released; ``approved`` ones that never started are failed too
    (an approval is for now, not for whenever alertbot comes back). ``run_ids``: only these."""
    alive_since = now - RUN_STALE_AFTER
    stale = [
        runbook_runs.c.status.in_([RunStatus.RUNNING, RunStatus.APPROVED]),
        sa.func.coalesce(runbook_runs.c.heartbeat_at, runbook_runs.c.started_at) < alive_since,
    ]
    query = sa.select(runbook_runs.c.id, runbook_runs.c.status).where(*stale)
    if run_ids is not None:
        query = query.where(runbook_runs.c.id.in_(run_ids))
    ids = []
    for row in conn.execute(query).all():
        result = INTERRUPTED if row.status == RunStatus.RUNNING else NEVER_STARTED
        failed = conn.execute(
            runbook_runs.update()
            .where(runbook_runs.c.id == row.id, runbook_runs.c.status == row.status, *stale[1:])
            .values(status=RunStatus.FAILED, applied=[], result=result, finished_at=now)
        )
        if failed.rowcount:  # else it beat or started meanwhile, or another replica failed it first
            unlock(conn, row.id)
            ids.append(row.id)
    return ids


NEVER_STARTED = (
    "interrupted: approved, but alertbot stopped before running it; nothing was changed — ask for the run "
    "again if it is still needed"
)
INTERRUPTED = (
    "interrupted: alertbot stopped during this run; check the target (and `alertbot runbook history`) "
    "before running it again"
)


def _expire_if_stale(conn: Connection, run_id: int, *, now: datetime, requested_after: datetime) -> None:
    """A pending run requested before ``requested_after`` can no longer be approved: mark it expired."""
    conn.execute(
        runbook_runs.update()
        .where(
            runbook_runs.c.id == run_id,
            runbook_runs.c.status == RunStatus.PENDING,
            runbook_runs.c.started_at < requested_after,
        )
        .values(status=RunStatus.EXPIRED, result="approval expired", finished_at=now)
    )


def cancel_pending(
    conn: Connection, run_id: int, *, by: str, now: datetime, requested_after: datetime
) -> RunRecord | None:
    """Cancel a pending run — once: a second click finds it no longer pending and gets None."""
    _expire_if_stale(conn, run_id, now=now, requested_after=requested_after)
    result = conn.execute(
        runbook_runs.update()
        .where(runbook_runs.c.id == run_id, runbook_runs.c.status == RunStatus.PENDING)
        .values(status=RunStatus.CANCELLED, result=f"cancelled by {by}", finished_at=now)
    )
    return get(conn, run_id) if result.rowcount else None


def add_approval(
    conn: Connection, run_id: int, *, by: str, needed: int, now: datetime, requested_after: datetime
) -> tuple[RunStatus, list[str]] | None:
    """Count one approval of a pending run; it becomes ``approved`` at ``needed`` distinct approvers.
    Returns (status, approvers), or None when the run is not pending (done, cancelled, expired, or
    approved by someone else first — on any replica: exactly one caller turns it ``approved``)."""
    _expire_if_stale(conn, run_id, now=now, requested_after=requested_after)
    # FOR UPDATE: a concurrent approval on another replica waits here until this one commits, then
    # reads what it wrote (SQLite has one writer at a time anyway and ignores the clause).
    row = conn.execute(
        sa.select(runbook_runs.c.approvals)
        .where(runbook_runs.c.id == run_id, runbook_runs.c.status == RunStatus.PENDING)
        .with_for_update()
    ).first()
    if row is None:
        return None
    approvers = list(row.approvals or [])
    if by in approvers:
        return RunStatus.PENDING, approvers
    approvers.append(by)
    status = RunStatus.APPROVED if len(approvers) >= needed else RunStatus.PENDING
    result = (
        f"approved by {', '.join(approvers)}"
        if status == RunStatus.APPROVED
        else f"approval {len(approvers)} of {needed} by {by}"
    )
    counted = conn.execute(
        runbook_runs.update()
        .where(runbook_runs.c.id == run_id, runbook_runs.c.status == RunStatus.PENDING)
        .values(approvals=approvers, status=status, result=result)
        # Approved: its process runs it at once; the stamp lets recovery tell one that never started.
        .values(**({"heartbeat_at": now} if status == RunStatus.APPROVED else {}))
    )
    return (status, approvers) if counted.rowcount else None
