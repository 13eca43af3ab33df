"""Every change of a runbook run's status is conditional on the status it expects, so replicas sharing
the store cannot both act on one run or overwrite each other's record (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from alertbot.runbooks.executor import Executor
from alertbot.runbooks.k8s import Kubernetes
from alertbot.runbooks.loader import load_runbooks
from alertbot.store import runbook_runs
from alertbot.store.engine import Store
from alertbot.store.runbook_runs import RunStatus
from tests.conftest import ROOT
from tests.fakes.kubernetes import FakeKubernetes

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PARAMS = {
    "namespace": "ai-nutritionist",
    "virtualservice": "nutrition-service-canary",
    "stable_subset": "stable",
    "service": "",
}


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url)
    yield opened
    await opened.close()


async def pending_run(store: Store) -> int:
    return await store.write(
        runbook_runs.queue,
        runbook="emergency-rollback",
        params=PARAMS,
        trigger="slack:UREQ",
        automation="",
        target_key="",
        status=RunStatus.PENDING,
        now=NOW,
    )


async def approve(store: Store, run_id: int, by: str) -> tuple[RunStatus, list[str]] | None:
    return await store.write(
        runbook_runs.add_approval, run_id, by=by, needed=1, now=NOW, requested_after=NOW - timedelta(minutes=15)
    )


async def test_a_run_is_approved_once(store: Store) -> None:
    """The first approval of a one-approver run makes it approved; a second approver (another replica's
    click) gets None and changes nothing: the approvers recorded are the first one's."""
    run_id = await pending_run(store)
    assert await approve(store, run_id, "slack:U1") == (RunStatus.APPROVED, ["slack:U1"])
    assert await approve(store, run_id, "slack:U2") is None
    record = await store.read(runbook_runs.get, run_id)
    assert record is not None and (record.status, record.approvals) == (RunStatus.APPROVED, ["slack:U1"])
    assert isinstance(record.status, RunStatus)


async def test_cancel_and_approve_exclude_each_other(store: Store) -> None:
    """A cancelled run cannot be approved, and an approved one cannot be cancelled."""
    cancelled = await pending_run(store)
    later = NOW - timedelta(minutes=15)
    assert await store.write(runbook_runs.cancel_pending, cancelled, by="slack:U1", now=NOW, requested_after=later)
    assert await approve(store, cancelled, "slack:U2") is None
    approved = await pending_run(store)
    assert await approve(store, approved, "slack:U2") is not None
    assert (
        await store.write(runbook_runs.cancel_pending, approved, by="slack:U1", now=NOW, requested_after=later) is None
    )


async def test_finish_only_from_the_expected_status(store: Store) -> None:
    """finish() writes only when the run is in a status the caller expects, and says whether it did."""
    run_id = await pending_run(store)
    ended = await store.write(
        runbook_runs.finish,
        run_id,
        expect=[RunStatus.RUNNING],
        status=RunStatus.FAILED,
        applied=[],
        result="x",
        now=NOW,
    )
    assert ended is False
    record = await store.read(runbook_runs.get, run_id)
    assert record is not None and record.status == RunStatus.PENDING


async def test_the_end_of_a_run_does_not_overwrite_another_replicas_record(
    store: Store, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """Replica A carried out an approved run; replica B, which also got to it, finds the rollback
    already applied (a noop plan) — its end-of-run write must leave A's `succeeded` record, with what
    A applied (for undo), as it is."""
    fake, factory = k8s
    runbook = load_runbooks(ROOT / "runbooks")["emergency-rollback"]
    replica_a = Executor(store, factory, clock=lambda: NOW)
    replica_b = Executor(store, factory, clock=lambda: NOW)
    run_id = await pending_run(store)
    assert await approve(store, run_id, "slack:U1") is not None
    first = await replica_a.run(runbook, PARAMS, execute=True, trigger="slack:UREQ", run_id=run_id)
    assert first.status == RunStatus.SUCCEEDED
    second = await replica_b.run(runbook, PARAMS, execute=True, trigger="slack:UREQ", run_id=run_id)
    assert second.status == RunStatus.SUCCEEDED and "elsewhere" in second.message
    record = await store.read(runbook_runs.get, run_id)
    assert record is not None
    assert (record.status, record.approvals) == (RunStatus.SUCCEEDED, ["slack:U1"]) and record.applied
    assert len([p for p in fake.patches if not p["dry_run"]]) == 1
    undone = await replica_b.undo(run_id, execute=True, trigger="cli:test")
    assert undone.status == RunStatus.SUCCEEDED
    assert fake.weights("ai-nutritionist", "nutrition-service-canary") == [[("stable", 90), ("canary", 10)]]


async def test_an_approved_run_whose_process_stopped_before_running_it_is_failed_at_start(store: Store) -> None:
    """A run approved just as alertbot stopped (it never reached `running`) does not stay `approved`
    for ever: recovery at start fails it, saying nothing was changed — once its approval is older
    than a heartbeat allows, never a run that is about to start."""
    run_id = await pending_run(store)
    assert await approve(store, run_id, "slack:UAPPROVER") == (RunStatus.APPROVED, ["slack:UAPPROVER"])
    soon = NOW + runbook_runs.RUN_STALE_AFTER / 2
    assert await store.write(runbook_runs.recover_interrupted, now=soon) == []
    later = NOW + runbook_runs.RUN_STALE_AFTER + timedelta(seconds=1)
    assert await store.write(runbook_runs.recover_interrupted, now=later) == [run_id]
    record = await store.read(runbook_runs.get, run_id)
    assert record is not None and record.status == RunStatus.FAILED
    assert record.result.startswith("interrupted: approved, but alertbot stopped before running it")
