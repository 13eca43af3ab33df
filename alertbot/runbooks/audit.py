"""The audit of runbook runs: every run's record in the store, from its start (taking its targets'
locks) to its end, the heartbeat a running run keeps, and what a run's end tells the rest of alertbot
(a note on the incident that asked for it, a change event for what it changed).

runbooks/executor.py decides what a run does; what it records goes through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from alertbot.errors import AlertbotError, RunbookError
from alertbot.observability import Metrics
from alertbot.runbooks.steps import StepPlan
from alertbot.store import change_events, incident_notes, runbook_runs
from alertbot.store.engine import Store
from alertbot.store.runbook_runs import NOT_STARTED, RunStatus

log = structlog.get_logger("alertbot.runbooks")


@dataclass
class RunResult:
    """What a run came to, as its record says."""

    run_id: int
    status: RunStatus  # planned | succeeded | noop | failed | rejected (another replica's, if it took the run)
    plans: list[StepPlan]
    message: str

    @property
    def ok(self) -> bool:
        return self.status in (RunStatus.PLANNED, RunStatus.SUCCEEDED, RunStatus.NOOP)

    def to_json(self) -> dict[str, Any]:
        """As the API answers and the CLI prints it (each step's plan without its stored detail)."""
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "ok": self.ok,
            "message": self.message,
            "plan": [{k: v for k, v in p.to_json().items() if k != "detail"} for p in self.plans],
        }


class RunAudit:
    """Writes the records of one executor's runs (and counts them in the metrics)."""

    def __init__(
        self, store: Store, *, clock: Callable[[], datetime], metrics: Metrics | None, heartbeat: timedelta
    ) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._heartbeat = heartbeat  # how often a running run records that its process is alive

    async def end(
        self,
        run_id: int | None,
        name: str,
        params: dict[str, str],
        *,
        trigger: str,
        status: RunStatus,
        plans: list[StepPlan],
        message: str,
        undo_of: int | None = None,
        expect: Collection[RunStatus] = NOT_STARTED,
    ) -> RunResult:
        """Audit a run that ends without applying anything (planned, noop, failed to plan, rejected)."""
        plan = [p.to_json() for p in plans]
        if run_id is None:
            run_id = await self._store.write(
                runbook_runs.start,
                runbook=name,
                params=params,
                trigger=trigger,
                status=status,
                plan=plan,
                undo_of=undo_of,
                now=self._clock(),
                result=message,
            )
        else:
            ended = await self._store.write(
                runbook_runs.finish,
                run_id,
                expect=expect,
                status=status,
                applied=[],
                result=message,
                now=self._clock(),
                plan=plan,
                params=params,
            )
            if not ended:
                return await self._taken_elsewhere(run_id, plans)
        self.count(name, status)
        return RunResult(run_id, status, plans, message)

    async def _taken_elsewhere(self, run_id: int, plans: list[StepPlan]) -> RunResult:
        """The run moved on while this process looked at it (another replica ran it, or it was
        cancelled): its record is that other outcome's, left as it is."""
        current = await self._store.read(runbook_runs.get, run_id)
        status = current.status if current is not None else RunStatus.REJECTED
        log.info("runbook_run_taken_elsewhere", run_id=run_id, status=status)
        return RunResult(run_id, status, plans, f"run {run_id} is {status} elsewhere: nothing was done here")

    def count(self, name: str, status: RunStatus) -> None:
        if self._metrics is not None:
            self._metrics.runbook_runs.labels(name, status).inc()

    async def start(
        self,
        *,
        name: str,
        params: dict[str, str],
        trigger: str,
        plans: list[StepPlan],
        undo_of: int | None,
        run_id: int | None = None,
    ) -> int:
        """Record the run as running and take its targets' locks (RunbookError: another run holds one,
        or the queued run was taken elsewhere)."""
        return await self._store.write(
            _start_locked,
            name=name,
            params=params,
            trigger=trigger,
            plans=plans,
            undo_of=undo_of,
            now=self._clock(),
            run_id=run_id,
        )

    async def finish(self, run_id: int, *, status: RunStatus, applied: list[dict[str, Any]], result: str) -> None:
        """Record the end of a run this process carried out, and release its locks."""
        await self._store.write(
            _finish_and_unlock, run_id, status=status, applied=applied, result=result, now=self._clock()
        )

    async def note_on_incident(self, trigger: str, *, kind: str, text: str) -> None:
        await self._store.write(_note_on_incident, trigger, kind=kind, text=text, now=self._clock())

    @contextlib.asynccontextmanager
    async def beating(self, run_id: int) -> AsyncIterator[None]:
        """Record a heartbeat for the run while in the block: while it beats, no other process takes
        the run for interrupted (a wait or a slow rollout can keep a run going for minutes)."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self._heartbeat.total_seconds())
                try:
                    await self._store.write(runbook_runs.beat, run_id, self._clock())
                except AlertbotError as exc:  # the store is down: the next beat may get through
                    log.warning("runbook_heartbeat_failed", run_id=run_id, error=exc.message)

        task = asyncio.create_task(beat(), name=f"runbook-heartbeat-{run_id}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait({task})  # its end (the caller's own cancellation still propagates)


def _start_locked(
    conn: Connection,
    *,
    name: str,
    params: dict[str, str],
    trigger: str,
    plans: list[StepPlan],
    undo_of: int | None,
    now: datetime,
    run_id: int | None = None,
) -> int:
    """Audit the run as running and take its targets' locks, in one transaction (all or nothing)."""
    plan = [p.to_json() for p in plans]
    if run_id is None:
        run_id = runbook_runs.start(
            conn,
            runbook=name,
            params=params,
            trigger=trigger,
            status=RunStatus.RUNNING,
            plan=plan,
            undo_of=undo_of,
            now=now,
        )
    elif not runbook_runs.mark_running(conn, run_id, plan=plan, params=params, now=now):
        raise RunbookError(f"run {run_id} is no longer queued (another replica took it, or it was cancelled)")
    held = runbook_runs.lock(conn, sorted({p.target for p in plans if p.target}), run_id, now)
    if held is not None:
        raise RunbookError(f"another run holds {held}: one run at a time per target")
    return run_id


_ALERT_TRIGGER = re.compile(r"^alert:(\d+)(\s|$)")


def _note_on_incident(conn: Connection, trigger: str, *, kind: str, text: str, now: datetime) -> None:
    """Tell the incident that asked for a run (trigger ``alert:ID ...``) what became of it."""
    found = _ALERT_TRIGGER.match(trigger)
    if found is not None:
        incident_notes.add(conn, [int(found.group(1))], kind=kind, text=text, now=now)


def _finish_and_unlock(
    conn: Connection, run_id: int, *, status: RunStatus, applied: list[dict[str, Any]], result: str, now: datetime
) -> None:
    """The end of a run this process carried out. Its record is still ``running`` — unless another
    replica took it for interrupted meanwhile (no heartbeat got through): then this outcome, which
    knows what was applied (for undo), replaces that guess."""
    if not runbook_runs.finish(
        conn, run_id, expect=[RunStatus.RUNNING], status=status, applied=applied, result=result, now=now
    ):
        current = runbook_runs.get(conn, run_id)
        if current is not None and current.status == RunStatus.FAILED and current.result == runbook_runs.INTERRUPTED:
            runbook_runs.finish(
                conn, run_id, expect=[RunStatus.FAILED], status=status, applied=applied, result=result, now=now
            )
        else:
            log.warning("runbook_run_end_not_recorded", run_id=run_id, status=status, found=current)
            return
    runbook_runs.unlock(conn, run_id)
    if applied:
        _record_change(conn, run_id, applied, now)


def _record_change(conn: Connection, run_id: int, applied: list[dict[str, Any]], now: datetime) -> None:
    """A run that changed something is a change too: it shows in "what changed?" and in timelines."""
    run = runbook_runs.get(conn, run_id)
    assert run is not None
    types = {plan["type"] for plan in applied}
    kind = (
        "traffic_shift"
        if any(t.startswith("istio.") for t in types)
        else ("deployment" if types & {"k8s.rollout_restart", "k8s.rollout_undo"} else "config_change")
    )
    params = run.params
    lines = [line for plan in applied for line in plan["lines"]]
    services = [plan["detail"]["service"] for plan in applied if plan["detail"].get("service")]
    verb = f"undo of run {run.undo_of}" if run.undo_of else f"runbook {run.runbook}"
    change_events.record(
        conn,
        source="runbook",
        now=now,
        values={
            "event_id": f"runbook:{run_id}",
            "kind": kind,
            "service": params.get("service")
            or (services[0] if services else "")
            or params.get("deployment")
            or params.get("virtualservice")
            or run.runbook,
            "namespace": params.get("namespace", ""),
            "version": "",
            "actor": run.trigger,
            "description": f"{verb} (run {run_id}): " + "; ".join(lines),
            "links": [],
            "timestamp": now,
        },
    )
