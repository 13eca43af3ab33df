"""Running a runbook: plan every step first (reading live state, writing nothing), then — only when
asked to execute — take the targets' locks and apply the steps in order, recording before-state.

Every run is audited, dry-runs included (the records: runbooks/audit.py). An applied run can be
undone: each changed target is restored to the state the run found, guarded by a ``test`` of the
state the run left, so an undo never overwrites a change made since.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from alertbot.errors import RunbookError, RunbookUsageError
from alertbot.observability import Metrics
from alertbot.prometheus import Prometheus
from alertbot.runbooks.argocd import ARGOCD_NAMESPACE
from alertbot.runbooks.audit import RunAudit, RunResult
from alertbot.runbooks.k8s import Kubernetes
from alertbot.runbooks.model import Runbook
from alertbot.runbooks.progress import Progress, StepEvent, tell
from alertbot.runbooks.registry import apply_step, plan_step
from alertbot.runbooks.steps import StepContext, StepPlan
from alertbot.runbooks.targets import target_refusal
from alertbot.settings_sections import AutomationConfig
from alertbot.store import kube_objects, runbook_runs
from alertbot.store.engine import Store
from alertbot.store.runbook_runs import INTERRUPTED, NOT_STARTED, RunRecord, RunStatus

log = structlog.get_logger("alertbot.runbooks")


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
        argocd_namespace: str = ARGOCD_NAMESPACE,
    ) -> None:
        self._argocd_namespace = argocd_namespace
        # Runs an automation asked for may only act on its `targets` (alert labels chose the params).
        self._automations = {a.name: a for a in automations}
        self._audit = RunAudit(store, clock=clock, metrics=metrics, heartbeat=heartbeat)
        self._settle = settle  # how long weights must stay healthy to be last-known-good
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
        self,
        runbook: Runbook,
        given: dict[str, str],
        *,
        execute: bool,
        trigger: str,
        run_id: int | None = None,
        progress: Progress | None = None,
    ) -> RunResult:
        """Plan, audit, and (``execute``) apply, telling ``progress`` of each step as it starts and ends.
        ``run_id``: an automation's queued run to carry out. Invalid params raise RunbookUsageError
        before anything is read."""
        try:
            params = runbook.resolve_params(given)
            targets = runbook.targets(params)
        except ValueError as exc:
            if run_id is not None:
                return await self._audit.end(
                    run_id,
                    runbook.name,
                    given,
                    trigger=trigger,
                    status=RunStatus.FAILED,
                    plans=[],
                    message=f"invalid params: {exc}",
                )
            raise RunbookUsageError(f"runbook {runbook.name}: {exc}") from None
        # A stored request (an automation's, or an approved one): read once, checked before and after planning.
        record = await self._store.read(runbook_runs.get, run_id) if run_id is not None else None
        if record is not None and (refusal := self._refusal(record, runbook, targets)) is not None:
            return await self._reject(record.id, runbook.name, params, trigger=trigger, reason=refusal)
        try:
            plans = await self.plan(runbook, params)
        except RunbookError as exc:
            log.warning("runbook_plan_failed", runbook=runbook.name, trigger=trigger, error=exc.message)
            return await self._audit.end(
                run_id,
                runbook.name,
                params,
                trigger=trigger,
                status=RunStatus.FAILED,
                plans=[],
                message=f"planning failed: {exc.message}",
            )
        if record is not None and (changed := _unlike_approved(record, plans)) is not None:
            return await self._audit.end(
                run_id, runbook.name, params, trigger=trigger, status=RunStatus.REJECTED, plans=plans, message=changed
            )
        note = ""
        if execute and self._dry_run_only:
            execute, note = False, " (runbooks.dry_run is on: planned only)"
        if not execute:
            await self._server_dry_run(plans)
            return await self._audit.end(
                run_id,
                runbook.name,
                params,
                trigger=trigger,
                status=RunStatus.PLANNED,
                plans=plans,
                message="dry run: nothing was changed" + note,
            )
        return await self._apply(
            runbook.name, params, plans, trigger=trigger, undo_of=None, run_id=run_id, progress=progress
        )

    async def reject_outside_targets(self, runbook: Runbook, record: RunRecord) -> RunResult | None:
        """An automation's request (pending approval, or queued) whose target is outside its ``targets``:
        recorded as rejected with the reason, noted on its incident, before anything reads Kubernetes.
        None: its target is allowed (or a person asked for it), so it may be planned and approved."""
        try:
            params = runbook.resolve_params(record.params)
            targets = runbook.targets(params)
        except ValueError:
            return None  # invalid params fail where the run is planned, with their own message
        refusal = self._refusal(record, runbook, targets)
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
        await self._audit.note_on_incident(trigger, kind="automation_rejected", text=reason)
        return await self._audit.end(
            run_id, name, params, trigger=trigger, status=RunStatus.REJECTED, plans=[], message=reason, expect=expect
        )

    def _refusal(self, record: RunRecord, runbook: Runbook, targets: list[str]) -> str | None:
        """Why an automation's run may not act on ``targets`` (None: it may, or no automation asked)."""
        if not record.automation:  # asked for by a person (CLI, Slack), not by an alert
            return None
        automation = self._automations.get(record.automation)
        if automation is None:
            return f"automation {record.automation} is no longer configured: its runs are not carried out"
        return target_refusal(automation, runbook, targets)

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
        progress: Progress | None = None,
    ) -> RunResult:
        kube = self._cluster()
        if kube is None and any(p.target for p in plans):
            message = (
                "no Kubernetes cluster configured (kubernetes.kubeconfig, $KUBECONFIG or in-cluster): "
                "runbooks can only plan"
            )
            if run_id is not None:
                return await self._audit.end(
                    run_id, name, params, trigger=trigger, status=RunStatus.FAILED, plans=plans, message=message
                )
            raise RunbookUsageError(message)
        if all(p.noop for p in plans if p.target) and any(p.target for p in plans):
            return await self._audit.end(
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
            run_id = await self._audit.start(
                name=name, params=params, trigger=trigger, plans=plans, undo_of=undo_of, run_id=run_id
            )
        except RunbookError as exc:
            return await self._audit.end(
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
            async with self._audit.beating(run_id):
                ctx = self._context()
                for plan in plans:
                    note = await _step(plan, ctx, progress)
                    if note:
                        notes.append(note)
                        message = "applied, but " + "; ".join(notes) + " — " + message.removeprefix("applied: ")
                    if plan.undoable:
                        applied.append(plan.to_json())
        except RunbookError as exc:
            status, message = RunStatus.FAILED, _stopped_at(plan, f"failed: {exc.message}", applied, run_id)
        except asyncio.CancelledError:  # alertbot is stopping: what ran is recorded, never "succeeded"
            status, message = RunStatus.FAILED, _stopped_at(plan, INTERRUPTED, applied, run_id)
            raise
        finally:
            await self._audit.finish(run_id, status=status, applied=applied, result=message)
        self._audit.count(name, status)
        log.info("runbook_run", run_id=run_id, runbook=name, status=status, trigger=trigger)
        return RunResult(run_id, status, plans, message)

    def _context(self) -> StepContext:
        return StepContext(
            self._cluster(), self._prometheus, self._clock, self._max_wait, self._last_good, self._argocd_namespace
        )

    async def _last_good(self, namespace: str, name: str) -> kube_objects.LastGood | None:
        return await self._store.read(kube_objects.last_good, namespace, name, now=self._clock(), settle=self._settle)

    async def undo(self, run_id: int, *, execute: bool, trigger: str, progress: Progress | None = None) -> RunResult:
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
        return await self._apply_reverse(
            record.runbook, record.params, plans, trigger=trigger, undo_of=run_id, progress=progress
        )

    async def _apply_reverse(
        self,
        name: str,
        params: dict[str, str],
        plans: list[StepPlan],
        *,
        trigger: str,
        undo_of: int,
        progress: Progress | None,
    ) -> RunResult:
        ctx = self._context()
        run_id = await self._audit.start(name=name, params=params, trigger=trigger, plans=plans, undo_of=undo_of)
        status, message, restored = RunStatus.SUCCEEDED, f"restored the state run {undo_of} found", []
        try:
            async with self._audit.beating(run_id):
                for plan in plans:
                    await _step(plan, ctx, progress, reverse=True)
                    restored.append(plan.to_json())
        except RunbookError as exc:
            status, message = RunStatus.FAILED, f"undo of step {plan.index} failed: {exc.message}"
        except asyncio.CancelledError:  # alertbot is stopping: the undo is not complete
            status, message = RunStatus.FAILED, f"undo of step {plan.index} {INTERRUPTED}"
            raise
        finally:
            await self._audit.finish(run_id, status=status, applied=[], result=message)
        return RunResult(run_id, status, plans, message)


async def _step(plan: StepPlan, ctx: StepContext, progress: Progress | None, *, reverse: bool = False) -> str | None:
    """Apply (or reverse) one step, telling ``progress`` when it starts and how it ended."""
    await tell(progress, StepEvent("started", plan))
    began = time.monotonic()
    try:
        note = await apply_step(plan, ctx, dry_run=False, reverse=reverse)
    except RunbookError as exc:
        await tell(progress, StepEvent("failed", plan, time.monotonic() - began, exc.message))
        raise
    await tell(progress, StepEvent("done", plan, time.monotonic() - began, note or ""))
    return note


def _stopped_at(plan: StepPlan, what: str, applied: list[dict[str, Any]], run_id: int) -> str:
    """Why a run stopped at ``plan``'s step, and what it had applied before (undoable)."""
    done = ", ".join(f"step {a['index']}" for a in applied) or "no step"
    undo = f" — `alertbot runbook undo {run_id}` restores them" if applied else ""
    return f"step {plan.index} ({plan.type}) {what}. Applied before it: {done}{undo}"


def _unlike_approved(record: RunRecord, plans: list[StepPlan]) -> str | None:
    """Why an approved run may not apply ``plans``: they are not the plan its approvers were shown
    (the object changed in between). None: they are, or nobody was shown one (an automation's
    ``auto`` run)."""
    if record.status != RunStatus.APPROVED or not record.plan:
        return None
    if [p.to_json() for p in plans] == record.plan:
        return None
    log.warning("approved_plan_changed", run_id=record.id, runbook=record.runbook)
    return "the target changed after the plan was approved: nothing was applied; ask for the run again"
