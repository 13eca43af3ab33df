"""Runbook runs that wait for people: requested with a dry-run plan, approved by whoever
``slack.runbook_approvers`` allows (two different approvers for a high-risk runbook, never the
requester unless ``slack.allow_self_approval``), within ``APPROVAL_TTL``.

What is approved is what was shown: approving re-plans first, and when the plan differs from the one
on the request (the object changed since, or an automation's request was never planned), the request
is replaced by a new one with the new plan, to be approved again. A request raised by an alert is
cancelled when that alert resolves, unless its automation says ``keep_after_resolve``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from alertbot.errors import PayloadError
from alertbot.runbooks.audit import RunResult
from alertbot.runbooks.executor import Executor
from alertbot.runbooks.model import Runbook
from alertbot.runbooks.progress import Progress
from alertbot.runbooks.steps import StepPlan
from alertbot.services.roles import Action, Actor, Forbidden, Roles, Source
from alertbot.store import incidents, runbook_runs
from alertbot.store.engine import Store
from alertbot.store.runbook_runs import RunRecord

log = structlog.get_logger("alertbot.approvals")

APPROVAL_TTL = timedelta(minutes=15)
_ALERT_TRIGGER = re.compile(r"^alert:(\d+)\b")


@dataclass(frozen=True)
class Proposal:
    """A pending run and what approving it will do."""

    run_id: int
    runbook: Runbook
    params: dict[str, str]
    plans: list[StepPlan]
    requested_by: str

    @property
    def targets(self) -> list[str]:
        return sorted({p.target for p in self.plans if p.target})

    @property
    def lines(self) -> list[str]:
        return [line for p in self.plans for line in p.lines]


class Verdict(StrEnum):
    NEED_MORE = "need_more"  # counted; another approver is needed (two-person rule)
    APPROVED = "approved"  # approved: run it
    REPLANNED = "replanned"  # the plan changed (or was never shown): a new request replaces it
    NOT_PENDING = "not_pending"  # done, cancelled or expired meanwhile
    ALREADY = "already"  # this approver already approved
    # An approval from the API or the CLI is already counted: they share one credential (the API
    # token, a shell on the host), so they count as one approver; the other must come from Slack.
    OPERATOR_COUNTED = "operator_counted"


@dataclass(frozen=True)
class ApprovalOutcome:
    verdict: Verdict
    record: RunRecord
    approvers: list[str] = field(default_factory=list)
    needed: int = 1
    proposal: Proposal | None = None  # REPLANNED: the new request
    state: str = ""  # NOT_PENDING: the run's status

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "run_id": self.record.id,
            "runbook": self.record.runbook,
            "verdict": self.verdict.value,
            "approvers": self.approvers,
            "needed": self.needed,
        }
        if self.state:
            body["state"] = self.state
        if self.proposal is not None:  # the plan changed since it was asked for: the new run to approve
            body["replaced_by"] = {"run_id": self.proposal.run_id, "plan": self.proposal.lines}
        return body


def by_slack(approver: str) -> bool:
    """Whether an approval came from a Slack user (signed by Slack), not the API or the CLI."""
    return approver.startswith("slack:")


def incident_of(record: RunRecord) -> int | None:
    """The incident whose alert asked for this run (automations), if any."""
    match = _ALERT_TRIGGER.match(record.trigger)
    return int(match.group(1)) if match else None


class ApprovalService:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        runbooks: Mapping[str, Runbook],
        *,
        roles: Roles,
        clock: Callable[[], datetime],
        allow_self_approval: bool = False,
        keep_after_resolve: Collection[str] = (),
        ttl: timedelta = APPROVAL_TTL,
    ) -> None:
        self._store = store
        self._executor = executor
        self.runbooks = dict(runbooks)
        self._roles = roles
        self._clock = clock
        self._allow_self = allow_self_approval
        self._keep = set(keep_after_resolve)
        self.ttl = ttl

    def prepare(self, name: str, args: Mapping[str, str]) -> tuple[Runbook, dict[str, str]]:
        """The runbook and its validated params (``PayloadError`` says what is wrong)."""
        runbook = self.runbooks.get(name)
        if runbook is None:
            raise PayloadError(f"no runbook `{name}` (have: {', '.join(sorted(self.runbooks)) or 'none'})")
        try:
            return runbook, runbook.resolve_params(dict(args))
        except ValueError as exc:
            raise PayloadError(str(exc)) from None

    async def propose(
        self,
        actor: Actor,
        runbook: Runbook,
        params: dict[str, str],
        *,
        like: RunRecord | None = None,
        plans: list[StepPlan] | None = None,
    ) -> Proposal:
        """Plan (dry run) and store a pending run carrying that plan. ``like``: the request it replaces
        (its trigger, automation and target are kept); ``plans``: already made."""
        if plans is None:
            plans = await self._executor.plan(runbook, params)
        trigger = like.trigger if like is not None else actor.audit
        run_id = await self._store.write(
            runbook_runs.queue,
            runbook=runbook.name,
            params=params,
            trigger=trigger,
            automation=like.automation if like is not None else None,  # None: asked for by hand
            target_key=(like.target_key or "") if like is not None else "",
            status="pending",
            now=self._clock(),
            plan=[p.to_json() for p in plans],
        )
        return Proposal(run_id, runbook, params, plans, trigger)

    def needed(self, runbook: Runbook) -> int:
        return 2 if runbook.risk == "high" else 1  # the two-person rule

    async def approve(self, actor: Actor, run_id: int) -> ApprovalOutcome:
        record = await self._store.read(runbook_runs.get, run_id)
        if record is None:
            raise PayloadError(f"no run {run_id}")
        await self._roles.require(actor, Action.APPROVE)
        if record.trigger == actor.audit and not self._allow_self:
            raise Forbidden(
                ":no_entry: you asked for this run; someone else must approve it (slack.allow_self_approval is off)"
            )
        runbook = self.runbooks.get(record.runbook)
        if runbook is None:
            raise PayloadError(f"run {run_id}: runbook {record.runbook} is no longer loaded: it cannot run")
        needed = self.needed(runbook)
        approvals = list(record.approvals or [])
        if record.status == "pending" and actor.audit in approvals:
            return ApprovalOutcome(Verdict.ALREADY, record, approvals, needed)
        if record.status == "pending" and actor.source is not Source.SLACK and any(not by_slack(a) for a in approvals):
            return ApprovalOutcome(Verdict.OPERATOR_COUNTED, record, approvals, needed)
        now = self._clock()
        # Expired requests fall through to add_approval, which marks them expired (never re-planned).
        live = record.status == "pending" and record.started_at >= now - self.ttl
        if live and await self._alert_resolved(record):
            await self._cancel(record, "its alert resolved")
            return await self._not_pending(record)
        if live and (rejected := await self._executor.reject_outside_targets(runbook, record)) is not None:
            return ApprovalOutcome(Verdict.NOT_PENDING, record, state=rejected.status)
        if live:
            replanned = await self._replan_if_changed(actor, runbook, record)
            if replanned is not None:
                return replanned
        counted = await self._store.write(
            runbook_runs.add_approval,
            run_id,
            by=actor.audit,
            needed=needed,
            now=now,
            requested_after=now - self.ttl,
        )
        if counted is None:
            return await self._not_pending(record)
        status, approvers = counted
        if status == "pending":
            return ApprovalOutcome(Verdict.NEED_MORE, record, approvers, needed)
        approved = await self._store.read(runbook_runs.get, run_id)
        assert approved is not None
        log.info("run_approved", run_id=run_id, runbook=record.runbook, approvers=approvers)
        return ApprovalOutcome(Verdict.APPROVED, approved, approvers, needed)

    async def _replan_if_changed(self, actor: Actor, runbook: Runbook, record: RunRecord) -> ApprovalOutcome | None:
        try:
            params = runbook.resolve_params(record.params)
        except ValueError as exc:
            raise PayloadError(f"run {record.id}: {exc}") from None
        plans = await self._executor.plan(runbook, params)
        if record.plan and [p.to_json() for p in plans] == record.plan:
            return None
        if not await self._cancel(record, "re-planned: the plan shown was not the current one"):
            return await self._not_pending(record)
        proposal = await self.propose(actor, runbook, params, like=record, plans=plans)
        log.info("run_replanned", run_id=record.id, new_run_id=proposal.run_id, runbook=record.runbook)
        return ApprovalOutcome(Verdict.REPLANNED, record, proposal=proposal)

    async def _not_pending(self, record: RunRecord) -> ApprovalOutcome:
        current = await self._store.read(runbook_runs.get, record.id)
        return ApprovalOutcome(Verdict.NOT_PENDING, record, state=current.status if current else "gone")

    async def _cancel(self, record: RunRecord, why: str) -> bool:
        now = self._clock()
        done = await self._store.write(
            runbook_runs.cancel_pending, record.id, by=f"alertbot ({why})", now=now, requested_after=now - self.ttl
        )
        return done is not None

    async def _alert_resolved(self, record: RunRecord) -> bool:
        incident_id = incident_of(record)
        if incident_id is None or (record.automation or "") in self._keep:
            return False
        incident = await self._store.read(incidents.current_of_chain, incident_id)
        return incident is not None and incident.status == "resolved"

    async def execute(self, record: RunRecord, progress: Progress | None = None) -> RunResult:
        """Carry out an approved run."""
        runbook = self.runbooks[record.runbook]
        return await self._executor.run(
            runbook, record.params, execute=True, trigger=record.trigger, run_id=record.id, progress=progress
        )

    async def cancel(self, actor: Actor, run_id: int) -> RunRecord | None:
        """Cancel a pending run (its requester or an approver); None when it was no longer pending."""
        record = await self._store.read(runbook_runs.get, run_id)
        if record is None:
            raise PayloadError(f"no run {run_id}")
        if record.trigger != actor.audit and not await self._roles.may(actor, Action.APPROVE):
            raise Forbidden(":no_entry: only the requester or an approver may cancel")
        now = self._clock()
        return await self._store.write(
            runbook_runs.cancel_pending, run_id, by=actor.audit, now=now, requested_after=now - self.ttl
        )

    async def cancel_for_resolved(self) -> list[RunRecord]:
        """Cancel every pending request whose alert has resolved (unless its automation keeps it)."""
        cancelled = []
        for record in await self._store.read(runbook_runs.pending):
            if await self._alert_resolved(record) and await self._cancel(record, "its alert resolved"):
                log.info("run_cancelled_on_resolve", run_id=record.id, incident_id=incident_of(record))
                cancelled.append(record)
        return cancelled
