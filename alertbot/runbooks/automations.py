"""Automations: a matching alert asks for a runbook run.

The decision is made in the alert's own transaction (pipeline): the request is stored as a run
``queued`` (``mode: auto``) or ``pending`` (``mode: approve``, for a human to approve), unless the same
automation ran for the same target within its ``cooldown`` — so a flapping alert cannot loop. After
commit the runner carries out queued runs; on start it carries out any a crash left queued.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy.engine import Connection

from alertbot.domain.automation import automation_matches, render_params
from alertbot.runbooks.executor import Executor
from alertbot.runbooks.model import Runbook
from alertbot.runbooks.targets import labelled_target_params
from alertbot.settings_sections import AutomationConfig
from alertbot.store import decisions, runbook_runs
from alertbot.store.engine import Store
from alertbot.store.runbook_runs import RunStatus
from alertbot.tasks import TaskSet

log = structlog.get_logger("alertbot.automations")


@dataclass(frozen=True)
class RunRequest:
    run_id: int
    runbook: str
    status: RunStatus  # queued (run now) | pending (awaits approval)


def request_runs(
    conn: Connection,
    automations: list[AutomationConfig],
    labels: Mapping[str, str],
    alert_labels: Mapping[str, str],
    *,
    incident_id: int,
    now: datetime,
    shadow: bool = False,
) -> list[RunRequest]:
    """Store the runs the matching automations ask for: queued ones run now, pending ones await approval."""
    requests = []
    for automation in automations:
        if not automation_matches(automation.match, labels):
            continue
        trigger = f"alert:{incident_id} automation:{automation.name}"
        try:
            params = render_params(automation.params, alert_labels)
        except ValueError as exc:
            runbook_runs.queue(
                conn,
                runbook=automation.runbook,
                params={},
                trigger=trigger,
                automation=automation.name,
                target_key="",
                status=RunStatus.FAILED,
                now=now,
                result=f"cannot run: {exc}",
            )
            continue
        if shadow or automation.mode == "shadow":
            decisions.record(
                conn,
                incident_id=incident_id,
                kind="runbook",
                now=now,
                summary=f"would start {automation.runbook} ({automation.name}) with {params}",
                detail={"automation": automation.name, "runbook": automation.runbook, "params": params},
            )
            continue
        target_key = f"{automation.name}:{json.dumps(params, sort_keys=True)}"
        earlier = runbook_runs.last_for_target(conn, target_key, now - automation.cooldown)
        if earlier is not None:
            log.info("automation_cooldown", automation=automation.name, incident_id=incident_id, earlier_run=earlier.id)
            continue
        status = RunStatus.QUEUED if automation.mode == "auto" else RunStatus.PENDING
        run_id = runbook_runs.queue(
            conn,
            runbook=automation.runbook,
            params=params,
            trigger=trigger,
            automation=automation.name,
            target_key=target_key,
            status=status,
            now=now,
        )
        requests.append(RunRequest(run_id, automation.runbook, status))
    return requests


def automation_problem(
    automations: list[AutomationConfig], runbooks: Mapping[str, Runbook], runbooks_dir: Path
) -> str | None:
    """What would make an automation's runs fail or be rejected, found before any alert: a runbook
    that is not loaded, a param the runbook does not declare, a required one not given, a target
    taken from alert labels without ``targets`` (check-config refuses the config; the daemon logs it)."""
    for index, automation in enumerate(automations):
        runbook = runbooks.get(automation.runbook)
        if runbook is None:
            return (
                f"automations[{index}].runbook: no runbook {automation.runbook!r} in {runbooks_dir} "
                f"(have: {', '.join(sorted(runbooks)) or 'none'})"
            )
        if (problem := runbook.param_names_problem(automation.params)) is not None:
            return f"automations[{index}].params: {problem}"
    return automation_target_problem(automations, runbooks)


def automation_target_problem(automations: list[AutomationConfig], runbooks: Mapping[str, Runbook]) -> str | None:
    """The first automation that takes its Kubernetes target from alert labels without a ``targets``
    allow-list, described with its key path (None: every such automation has one)."""
    for index, automation in enumerate(automations):
        runbook = runbooks.get(automation.runbook)
        if runbook is None or automation.targets:
            continue
        templated = labelled_target_params(automation, runbook)
        if templated:
            return (
                f"automations[{index}].targets: automation {automation.name} takes its target "
                f"({', '.join(f'params.{p}' for p in templated)}) from alert labels, which whoever can post to "
                "Alertmanager chooses: list the namespace/name patterns it may act on, e.g. targets: [payments/*]"
            )
    return None


class AutomationRunner:
    def __init__(self, store: Store, executor: Executor, runbooks: Mapping[str, Runbook]) -> None:
        self._store = store
        self._executor = executor
        self._runbooks = dict(runbooks)
        self._tasks = TaskSet("automation_run_crashed")

    async def start(self) -> None:
        """Release what a crash left running; carry out what it left queued."""
        interrupted = await self._store.write(runbook_runs.recover_interrupted, now=self._executor.now())
        if interrupted:
            log.warning("runbook_runs_interrupted", runs=interrupted)
        leftover = await self._store.read(runbook_runs.queued)
        if leftover:
            log.info("automation_runs_recovered", runs=[r.id for r in leftover])
            self.submit([r.id for r in leftover])

    def submit(self, run_ids: list[int]) -> None:
        for run_id in run_ids:
            self._tasks.start(f"runbook-run-{run_id}", self._run(run_id))

    async def _run(self, run_id: int) -> None:
        try:
            record = await self._store.read(runbook_runs.get, run_id)
            if record is None:
                return
            runbook = self._runbooks.get(record.runbook)
            if runbook is None:
                await self._store.write(
                    runbook_runs.finish,
                    run_id,
                    expect=runbook_runs.NOT_STARTED,
                    status=RunStatus.FAILED,
                    applied=[],
                    result=f"no runbook {record.runbook!r} is loaded",
                    now=self._executor.now(),
                )
                return
            result = await self._executor.run(
                runbook, record.params, execute=True, trigger=record.trigger, run_id=run_id
            )
            log.info(
                "automation_run", run_id=run_id, runbook=record.runbook, status=result.status, message=result.message
            )
        except Exception:
            log.exception("automation_run_crashed", run_id=run_id)

    async def idle(self) -> None:
        """Wait for every run started so far (tests, shutdown)."""
        await self._tasks.idle()

    async def stop(self, grace: float = 30.0) -> None:
        """Let runs in progress finish, up to ``grace`` seconds (then they are interrupted)."""
        await self._tasks.finish(grace)
