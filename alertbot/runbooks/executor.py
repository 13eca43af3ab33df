"""Running a runbook: plan every step first (reading live state, writing nothing), then — only when
asked to execute — take the targets' locks and apply the steps in order, recording before-state.

Every run is audited, dry-runs included. An applied run can be undone: each changed target is
restored to the state the run found, guarded by a ``test`` of the state the run left, so an undo
never overwrites a change made since.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from alertbot.errors import AlertbotError, RunbookError, RunbookUsageError
from alertbot.observability import Metrics
from alertbot.runbooks.k8s import Kubernetes
from alertbot.runbooks.model import Runbook
from alertbot.runbooks.prometheus import Prometheus
from alertbot.runbooks.steps import StepContext, StepPlan, apply_step, plan_step
from alertbot.runbooks.targets import target_refusal
from alertbot.settings import AutomationConfig
from alertbot.store import change_events, incident_notes, kube_objects, runbook_runs
from alertbot.store.engine import Store
from alertbot.store.runbook_runs import INTERRUPTED, NOT_STARTED, RunRecord, RunStatus

log = structlog.get_logger("alertbot.runbooks")


@dataclass
class RunResult:
    run_id: int
    status: RunStatus  # planned | succeeded | noop | failed | rejected (another replica's, if it took the run)
    plans: list[StepPlan]
    message: str

    @property
    def ok(self) -> bool:
        return self.status in (RunStatus.PLANNED, RunStatus.SUCCEEDED, RunStatus.NOOP)


class Executor:
    def __init__(
        self,
        store: Store,
        kube: Callable[[], Kubernetes] | None,
        *,
        clock: Callable[[], datetime],
        dry_run_only: bool = False,
        max_wait: float = 600.0,
        metrics: Metrics | None = None,
        prometheus: Prometheus | None = None,
        settle: timedelta = timedelta(minutes=10),
        heartbeat: timedelta = runbook_runs.RUN_HEARTBEAT,
        automations: Sequence[AutomationConfig] = (),
    ) -> None:
        # Runs an automation asked for may only act on its `targets` (alert labels chose the params).
        self._automations = {a.name: a for a in automations}
        self._heartbeat = heartbeat  # how often a running run records that its process is alive
        self._settle = settle  # how long weights must stay healthy to be last-known-good
        self._metrics = metrics
        self._prometheus = prometheus
        self._store = store
        self._kube_factory = kube
        self._kube: Kubernetes | None = None
        self._clock = clock
        self._dry_run_only = dry_run_only
        self._max_wait = max_wait

    def now(self) -> datetime:
        return self._clock()

    async def warm_up(self) -> None:
        """Build the Kubernetes client now (reading kubeconfig takes a few hundred ms), so the first
        automated rollback does not pay for it. Never fails start-up: a bad config surfaces per run."""
        if self._kube is None and self._kube_factory is not None:
            try:
                self._kube = await asyncio.to_thread(self._kube_factory)
            except RunbookError as exc:
                log.warning("kubernetes_unavailable", error=exc.message)

    def _cluster(self) -> Kubernetes | None:
        if self._kube is None and self._kube_factory is not None:
            self._kube = self._kube_factory()
        return self._kube

    async def plan(self, runbook: Runbook, params: dict[str, str]) -> list[StepPlan]:
        ctx = self._context()
        return [await plan_step(i, step, ctx) for i, step in enumerate(runbook.bound_steps(params))]

    async def run(
        self, runbook: Runbook, given: dict[str, str], *, execute: bool, trigger: str, run_id: int | None = None
    ) -> RunResult:
        """Plan, audit, and (``execute``) apply. ``run_id``: an automation's queued run to carry out.
        Invalid params raise RunbookUsageError before anything is read."""
        try:
            params = runbook.resolve_params(given)
            targets = runbook.targets(params)
        except ValueError as exc:
            if run_id is not None:
                return await self._end(
                    run_id,
                    runbook.name,
                    given,
                    trigger=trigger,
                    status=RunStatus.FAILED,
                    plans=[],
                    message=f"invalid params: {exc}",
                )
            raise RunbookUsageError(f"runbook {runbook.name}: {exc}") from None
        if run_id is not None and (refusal := await self._refusal(run_id, runbook, targets)) is not None:
            return await self._reject(run_id, runbook.name, params, trigger=trigger, reason=refusal)
        try:
            plans = await self.plan(runbook, params)
        except RunbookError as exc:
            log.warning("runbook_plan_failed", runbook=runbook.name, trigger=trigger, error=exc.message)
            return await self._end(
                run_id,
                runbook.name,
                params,
                trigger=trigger,
                status=RunStatus.FAILED,
                plans=[],
                message=f"planning failed: {exc.message}",
            )
        if run_id is not None and (changed := await self._unlike_approved(run_id, plans)) is not None:
            return await self._end(
                run_id, runbook.name, params, trigger=trigger, status=RunStatus.REJECTED, plans=plans, message=changed
            )
        note = ""
        if execute and self._dry_run_only:
            execute, note = False, " (runbooks.dry_run is on: planned only)"
        if not execute:
            await self._server_dry_run(plans)
            return await self._end(
                run_id,
                runbook.name,
                params,
                trigger=trigger,
                status=RunStatus.PLANNED,
                plans=plans,
                message="dry run: nothing was changed" + note,
            )
        return await self._apply(runbook.name, params, plans, trigger=trigger, undo_of=None, run_id=run_id)

    async def reject_outside_targets(self, runbook: Runbook, record: RunRecord) -> RunResult | None:
        """An automation's request (pending approval, or queued) whose target is outside its ``targets``:
        recorded as rejected with the reason, noted on its incident, before anything reads Kubernetes.
        None: its target is allowed (or a person asked for it), so it may be planned and approved."""
        try:
            params = runbook.resolve_params(record.params)
            targets = runbook.targets(params)
        except ValueError:
            return None  # invalid params fail where the run is planned, with their own message
        refusal = await self._refusal(record.id, runbook, targets)
        if refusal is None:
            return None
        return await self._reject(
            record.id, runbook.name, params, trigger=record.trigger, reason=refusal, expect=(RunStatus.PENDING,)
        )

    async def _reject(
        self,
        run_id: int,
        name: str,
        params: dict[str, str],
        *,
        trigger: str,
        reason: str,
        expect: Collection[RunStatus] = NOT_STARTED,
    ) -> RunResult:
        log.warning("automation_target_rejected", run_id=run_id, runbook=name, reason=reason)
        await self._store.write(_note_on_incident, trigger, kind="automation_rejected", text=reason, now=self.now())
        return await self._end(
            run_id, name, params, trigger=trigger, status=RunStatus.REJECTED, plans=[], message=reason, expect=expect
        )

    async def _unlike_approved(self, run_id: int, plans: list[StepPlan]) -> str | None:
        """Why an approved run may not apply ``plans``: they are not the plan its approvers were shown
        (the object changed in between). None: they are, or nobody was shown one (an automation's
        ``auto`` run)."""
        record = await self._store.read(runbook_runs.get, run_id)
        if record is None or record.status != RunStatus.APPROVED or not record.plan:
            return None
        if [p.to_json() for p in plans] == record.plan:
            return None
        log.warning("approved_plan_changed", run_id=run_id, runbook=record.runbook)
        return "the target changed after the plan was approved: nothing was applied; ask for the run again"

    async def _refusal(self, run_id: int, runbook: Runbook, targets: list[str]) -> str | None:
        """Why an automation's run may not act on ``targets`` (None: it may, or no automation asked)."""
        record = await self._store.read(runbook_runs.get, run_id)
        if record is None or not record.automation:  # asked for by a person (CLI, Slack), not by an alert
            return None
        automation = self._automations.get(record.automation)
        if automation is None:
            return f"automation {record.automation} is no longer configured: its runs are not carried out"
        return target_refusal(automation, runbook, targets)

    async def _end(
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
        self._count(name, status)
        return RunResult(run_id, status, plans, message)

    async def _taken_elsewhere(self, run_id: int, plans: list[StepPlan]) -> RunResult:
        """The run moved on while this process looked at it (another replica ran it, or it was
        cancelled): its record is that other outcome's, left as it is."""
        current = await self._store.read(runbook_runs.get, run_id)
        status = current.status if current is not None else RunStatus.REJECTED
        log.info("runbook_run_taken_elsewhere", run_id=run_id, status=status)
        return RunResult(run_id, status, plans, f"run {run_id} is {status} elsewhere: nothing was done here")

    def _count(self, name: str, status: RunStatus) -> None:
        if self._metrics is not None:
            self._metrics.runbook_runs.labels(name, status).inc()

    async def _server_dry_run(self, plans: list[StepPlan]) -> None:
        """With a cluster, let the API server check the patches too (RBAC, schema) without applying."""
        ctx = self._context()
        if ctx.kube is None:
            return
        for plan in plans:
            await apply_step(plan, ctx, dry_run=True)

    async def _apply(
        self,
        name: str,
        params: dict[str, str],
        plans: list[StepPlan],
        *,
        trigger: str,
        undo_of: int | None,
        run_id: int | None = None,
    ) -> RunResult:
        kube = self._cluster()
        if kube is None and any(p.target for p in plans):
            message = (
                "no Kubernetes cluster configured (kubernetes.kubeconfig, $KUBECONFIG or in-cluster): "
                "runbooks can only plan"
            )
            if run_id is not None:
                return await self._end(
                    run_id, name, params, trigger=trigger, status=RunStatus.FAILED, plans=plans, message=message
                )
            raise RunbookUsageError(message)
        if all(p.noop for p in plans if p.target) and any(p.target for p in plans):
            return await self._end(
                run_id,
                name,
                params,
                trigger=trigger,
                status=RunStatus.NOOP,
                plans=plans,
                undo_of=undo_of,
                message="nothing to change: " + "; ".join(line for p in plans if p.target for line in p.lines),
            )
        try:
            run_id = await self._store.write(
                _start_locked,
                name=name,
                params=params,
                trigger=trigger,
                plans=plans,
                undo_of=undo_of,
                now=self._clock(),
                run_id=run_id,
            )
        except RunbookError as exc:
            return await self._end(
                run_id,
                name,
                params,
                trigger=trigger,
                status=RunStatus.REJECTED,
                plans=plans,
                message=exc.message,
                undo_of=undo_of,
            )

        applied: list[dict[str, Any]] = []
        notes: list[str] = []
        status, message = RunStatus.SUCCEEDED, "applied: " + "; ".join(line for p in plans for line in p.lines)
        try:
            async with self._beating(run_id):
                ctx = self._context()
                for plan in plans:
                    note = await apply_step(plan, ctx, dry_run=False)
                    if note:
                        notes.append(note)
                        message = "applied, but " + "; ".join(notes) + " — " + message.removeprefix("applied: ")
                    if plan.undoable:
                        applied.append(plan.to_json())
        except RunbookError as exc:
            status, message = RunStatus.FAILED, _stopped_at(plan, f"failed: {exc.message}", applied, run_id)
        except asyncio.CancelledError:  # alertbot is stopping: what ran is recorded, never "succeeded"
            status, message = RunStatus.FAILED, _stopped_at(plan, f"interrupted: {INTERRUPTED}", applied, run_id)
            raise
        finally:
            await self._store.write(
                _finish_and_unlock, run_id, status=status, applied=applied, result=message, now=self._clock()
            )
        self._count(name, status)
        log.info("runbook_run", run_id=run_id, runbook=name, status=status, trigger=trigger)
        return RunResult(run_id, status, plans, message)

    @contextlib.asynccontextmanager
    async def _beating(self, run_id: int) -> AsyncIterator[None]:
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

    def _context(self) -> StepContext:
        return StepContext(self._cluster(), self._prometheus, self._clock, self._max_wait, self._last_good)

    async def _last_good(self, namespace: str, name: str) -> kube_objects.LastGood | None:
        return await self._store.read(kube_objects.last_good, namespace, name, now=self._clock(), settle=self._settle)

    async def undo(self, run_id: int, *, execute: bool, trigger: str) -> RunResult:
        record = await self._store.read(runbook_runs.get, run_id)
        if record is None:
            raise RunbookUsageError(f"no runbook run {run_id}")
        if not record.applied:
            raise RunbookUsageError(f"run {run_id} ({record.status}) changed nothing: nothing to undo")
        plans = []
        for data in reversed(record.applied):
            plan = StepPlan.from_json(data)
            plan.lines = [f"undo: {line}" for line in plan.lines]
            plans.append(plan)
        if not execute:
            ctx = self._context()
            if ctx.kube is not None:
                for plan in plans:
                    await apply_step(plan, ctx, dry_run=True, reverse=True)
            return RunResult(run_id, RunStatus.PLANNED, plans, "dry run: nothing was changed")
        kube = self._cluster()
        if kube is None:
            raise RunbookUsageError("no Kubernetes cluster configured: runbooks can only plan")
        return await self._apply_reverse(record.runbook, record.params, plans, trigger=trigger, undo_of=run_id)

    async def _apply_reverse(
        self, name: str, params: dict[str, str], plans: list[StepPlan], *, trigger: str, undo_of: int
    ) -> RunResult:
        ctx = self._context()
        run_id = await self._store.write(
            _start_locked, name=name, params=params, trigger=trigger, plans=plans, undo_of=undo_of, now=self._clock()
        )
        status, message, restored = RunStatus.SUCCEEDED, f"restored the state run {undo_of} found", []
        try:
            async with self._beating(run_id):
                for plan in plans:
                    await apply_step(plan, ctx, dry_run=False, reverse=True)
                    restored.append(plan.to_json())
        except RunbookError as exc:
            status, message = RunStatus.FAILED, f"undo of step {plan.index} failed: {exc.message}"
        except asyncio.CancelledError:  # alertbot is stopping: the undo is not complete
            status, message = RunStatus.FAILED, f"undo of step {plan.index} interrupted: {INTERRUPTED}"
            raise
        finally:
            await self._store.write(
                _finish_and_unlock, run_id, status=status, applied=[], result=message, now=self._clock()
            )
        return RunResult(run_id, status, plans, message)


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


def _stopped_at(plan: StepPlan, what: str, applied: list[dict[str, Any]], run_id: int) -> str:
    """Why a run stopped at ``plan``'s step, and what it had applied before (undoable)."""
    done = ", ".join(f"step {a['index']}" for a in applied) or "no step"
    undo = f" — `alertbot runbook undo {run_id}` restores them" if applied else ""
    return f"step {plan.index} ({plan.type}) {what}. Applied before it: {done}{undo}"
