"""The approval service from a table, with a stub planner and a throwaway SQLite store (no HTTP, no
cluster): who may approve, the two-person rule, self-approval, and re-planning when the plan changed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertbot.runbooks.loader import load_runbooks
from alertbot.runbooks.model import Runbook
from alertbot.runbooks.steps import StepPlan
from alertbot.services.approvals import ApprovalService, Verdict
from alertbot.services.roles import Actor, Forbidden, Roles
from alertbot.store.engine import Store
from alertbot.store.runbook_runs import RunRecord
from tests.conftest import ROOT

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PARAMS = {"namespace": "ai-nutritionist", "virtualservice": "nutrition-service-canary"}


class StubPlanner:
    """Plans whatever ``weights`` say now (as the executor would read the VirtualService)."""

    def __init__(self) -> None:
        self.weights = "stable 90 → 100, canary 10 → 0"

    async def plan(self, runbook: Runbook, params: dict[str, str]) -> list[StepPlan]:
        return [
            StepPlan(0, "istio.rollback", "virtualservice ai-nutritionist/nutrition-service-canary", [self.weights])
        ]

    async def reject_outside_targets(self, runbook: Runbook, record: RunRecord) -> None:
        return None  # these requests come from people, not automations: no allow-list applies


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path}/a.db")
    yield opened
    await opened.close()


def _service(
    store: Store, planner: StubPlanner, clock: Callable[[], datetime] = lambda: NOW, **kwargs: Any
) -> ApprovalService:
    return ApprovalService(
        store,
        planner,  # type: ignore[arg-type]  # stands in for the Executor: plans without Kubernetes
        load_runbooks(ROOT / "runbooks"),
        roles=Roles(responders=["URESPONDER"], approvers=["UA", "UB", "UREQ"]),
        clock=clock,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("runbook", "clicks", "verdicts"),
    [
        ("emergency-rollback", ["UA"], [Verdict.APPROVED]),
        ("emergency-rollback", ["UA", "UB"], [Verdict.APPROVED, Verdict.NOT_PENDING]),
        ("canary-promote", ["UA", "UA", "UB"], [Verdict.NEED_MORE, Verdict.ALREADY, Verdict.APPROVED]),
        ("emergency-rollback", ["URESPONDER"], [Forbidden]),  # responders do not approve
        ("emergency-rollback", ["UREQ"], [Forbidden]),  # the requester, without allow_self_approval
        ("emergency-rollback", ["UNOBODY", "UA"], [Forbidden, Verdict.APPROVED]),
    ],
)
async def test_approval_table(
    store: Store, runbook: str, clicks: list[str], verdicts: list[Verdict | type[Forbidden]]
) -> None:
    """Each click's verdict, in order: roles, the two-person rule, self-approval, once only."""
    service = _service(store, StubPlanner())
    params = dict(PARAMS)
    if runbook == "canary-promote":
        params.update(canary_weight="50", stable_weight="50")
    book, resolved = service.prepare(runbook, params)
    proposal = await service.propose(Actor.slack("UREQ"), book, resolved)
    for user, expected in zip(clicks, verdicts, strict=True):
        if expected is Forbidden:
            with pytest.raises(Forbidden):
                await service.approve(Actor.slack(user), proposal.run_id)
        else:
            assert (await service.approve(Actor.slack(user), proposal.run_id)).verdict is expected


async def test_a_changed_plan_is_replaced_not_approved(store: Store) -> None:
    """The object changed after the plan was shown: the click replaces the request with the new plan."""
    planner = StubPlanner()
    service = _service(store, planner)
    book, params = service.prepare("emergency-rollback", PARAMS)
    proposal = await service.propose(Actor.slack("UREQ"), book, params)
    planner.weights = "stable 70 → 100, canary 30 → 0"
    outcome = await service.approve(Actor.slack("UA"), proposal.run_id)
    assert outcome.verdict is Verdict.REPLANNED and outcome.proposal is not None
    assert outcome.proposal.lines == ["stable 70 → 100, canary 30 → 0"]
    assert (await service.approve(Actor.slack("UA"), outcome.proposal.run_id)).verdict is Verdict.APPROVED
    assert (await service.approve(Actor.slack("UB"), proposal.run_id)).verdict is Verdict.NOT_PENDING


async def test_an_expired_request_is_not_renewed_by_a_replan(store: Store) -> None:
    """Past APPROVAL_TTL a click finds the request expired, even when the plan has changed since."""
    planner = StubPlanner()
    clock = {"now": NOW}
    service = _service(store, planner, clock=lambda: clock["now"])
    book, params = service.prepare("emergency-rollback", PARAMS)
    proposal = await service.propose(Actor.slack("UREQ"), book, params)
    planner.weights = "stable 70 → 100, canary 30 → 0"
    clock["now"] = NOW + service.ttl + timedelta(seconds=1)
    outcome = await service.approve(Actor.slack("UA"), proposal.run_id)
    assert (outcome.verdict, outcome.state) == (Verdict.NOT_PENDING, "expired")
