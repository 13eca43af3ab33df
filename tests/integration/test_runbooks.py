"""Runbooks against a fake Kubernetes API server: plan, apply, no-op, concurrent edit, RBAC, outage, undo."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from alertbot.changes.watch import ChangeRecorder
from alertbot.errors import RunbookError
from alertbot.prometheus import Prometheus
from alertbot.runbooks.executor import Executor
from alertbot.runbooks.k8s import Kubernetes, api_client
from alertbot.runbooks.loader import load_runbooks
from alertbot.runbooks.model import PrometheusCheck, Runbook
from alertbot.runbooks.registry import apply_step
from alertbot.store import runbook_runs
from alertbot.store.engine import Store
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.fakes.prometheus import FakePrometheus
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = load_runbooks(ROOT / "runbooks")
TARGET = {"namespace": "ai-nutritionist", "virtualservice": "nutrition-service-canary"}
KEY = ("ai-nutritionist", "nutrition-service-canary")


@dataclass
class Env:
    k8s: FakeKubernetes
    executor: Executor
    store: Store
    server: TestServer


async def make_env(aiohttp_server: AiohttpServer, tmp_path: Path, fake: FakeKubernetes) -> Env:
    server = await aiohttp_server(fake.app)
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(str(server.make_url(""))))
    store = await Store.open(f"sqlite:///{tmp_path}/rb.db")
    executor = Executor(store, lambda: Kubernetes(api_client(config)), clock=lambda: datetime.now(UTC))
    return Env(fake, executor, store, server)


@pytest.fixture
async def env(aiohttp_server: AiohttpServer, tmp_path: Path) -> AsyncIterator[Env]:
    fake = FakeKubernetes()
    fake.add_virtualservice(seed_canary())
    e = await make_env(aiohttp_server, tmp_path, fake)
    yield e
    await e.store.close()


def rollback() -> Runbook:
    return RUNBOOKS["emergency-rollback"]


async def test_dry_run_plans_and_changes_nothing(env: Env) -> None:
    """Dry run: the plan says 90 → 100 / 10 → 0; the API server validated the patch (dryRun=All) but
    the VirtualService is unchanged; the run is audited as planned."""
    result = await env.executor.run(rollback(), TARGET, execute=False, trigger="cli:alice")
    assert result.status == "planned"
    assert result.plans[0].lines == [
        "virtualservice ai-nutritionist/nutrition-service-canary http[0] (primary): stable 90 → 100, canary 10 → 0"
    ]
    assert env.k8s.weights(*KEY) == [[("stable", 90), ("canary", 10)]]
    assert [p["dry_run"] for p in env.k8s.patches] == [True]
    record = await env.store.read(runbook_runs.get, result.run_id)
    assert record is not None and (record.status, record.trigger) == ("planned", "cli:alice")


async def test_execute_rolls_the_seed_canary_back_to_100_0(env: Env) -> None:
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli:alice")
    assert result.status == "succeeded", result.message
    assert env.k8s.weights(*KEY) == [[("stable", 100), ("canary", 0)]]
    patch = next(p for p in env.k8s.patches if not p["dry_run"])
    assert patch["ops"][0]["op"] == "test"
    record = await env.store.read(runbook_runs.get, result.run_id)
    assert record is not None and record.status == "succeeded" and len(record.applied) == 1


async def test_already_rolled_back_is_a_noop_that_says_so(env: Env) -> None:
    await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    again = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert again.status == "noop"
    assert "already all traffic on stable" in again.message
    assert len([p for p in env.k8s.patches if not p["dry_run"]]) == 1


async def test_multi_route_virtualservice(env: Env) -> None:
    vs = seed_canary()
    vs["metadata"]["name"] = "multi"
    vs["spec"]["http"].append(
        {
            "name": "mobile",
            "route": [
                {"destination": {"host": "nutrition-service", "subset": "canary"}, "weight": 30},
                {"destination": {"host": "nutrition-service", "subset": "stable"}, "weight": 70},
            ],
        }
    )
    env.k8s.add_virtualservice(vs)
    result = await env.executor.run(rollback(), {**TARGET, "virtualservice": "multi"}, execute=True, trigger="cli")
    assert result.status == "succeeded"
    assert env.k8s.weights("ai-nutritionist", "multi") == [
        [("stable", 100), ("canary", 0)],
        [("canary", 0), ("stable", 100)],
    ]


async def test_missing_subset_fails_planning_and_changes_nothing(env: Env) -> None:
    result = await env.executor.run(rollback(), {**TARGET, "stable_subset": "prod"}, execute=True, trigger="cli")
    assert result.status == "failed" and "subset 'prod' is not a destination" in result.message
    assert env.k8s.patches == []


async def test_concurrent_edit_fails_clearly_and_is_not_overwritten(env: Env) -> None:
    """Someone moves the canary to 80/20 right after alertbot read it: the guarded patch is refused."""

    def editor() -> None:
        vs = copy.deepcopy(env.k8s.virtualservices[KEY])
        vs["spec"]["http"][0]["route"][0]["weight"], vs["spec"]["http"][0]["route"][1]["weight"] = 80, 20
        env.k8s.add_virtualservice(vs)

    env.k8s.after_get = editor
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "failed"
    assert "changed since it was read" in result.message
    assert env.k8s.weights(*KEY) == [[("stable", 80), ("canary", 20)]]


async def test_forbidden_names_the_missing_permission(env: Env) -> None:
    env.k8s.forbidden.add(("patch", "virtualservices"))
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "failed"
    assert (
        "forbidden — the service account needs RBAC permission to patch virtualservices.networking.istio.io"
        in result.message
    )


async def test_api_server_down(env: Env) -> None:
    await env.server.close()
    result = await env.executor.run(rollback(), TARGET, execute=False, trigger="cli")
    assert result.status == "failed" and "Kubernetes API server unreachable" in result.message


async def test_undo_restores_the_before_state(env: Env) -> None:
    run = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    undone = await env.executor.undo(run.run_id, execute=True, trigger="cli:bob")
    assert undone.status == "succeeded", undone.message
    assert env.k8s.weights(*KEY) == [[("stable", 90), ("canary", 10)]]
    record = await env.store.read(runbook_runs.get, undone.run_id)
    assert record is not None and record.undo_of == run.run_id


async def test_undo_refuses_to_overwrite_a_later_change(env: Env) -> None:
    run = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    vs = copy.deepcopy(env.k8s.virtualservices[KEY])
    vs["spec"]["http"][0]["route"][0]["weight"], vs["spec"]["http"][0]["route"][1]["weight"] = 95, 5
    env.k8s.add_virtualservice(vs)
    undone = await env.executor.undo(run.run_id, execute=True, trigger="cli")
    assert undone.status == "failed" and "changed since it was read" in undone.message
    assert env.k8s.weights(*KEY) == [[("stable", 95), ("canary", 5)]]


async def test_v1beta1_fallback(aiohttp_server: AiohttpServer, tmp_path: Path) -> None:
    """An API server with an older Istio (no networking.istio.io/v1) is served through v1beta1."""
    fake = FakeKubernetes(served_versions=("v1beta1",))
    fake.add_virtualservice(seed_canary())
    env = await make_env(aiohttp_server, tmp_path, fake)
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "succeeded", result.message
    assert all("/v1beta1/" in p["path"] for p in fake.patches)
    await env.store.close()


async def test_one_run_at_a_time_per_target(env: Env) -> None:
    """A target locked by another run is refused (rejected, audited), nothing changes."""
    await env.store.write(
        runbook_runs.lock, ["virtualservice ai-nutritionist/nutrition-service-canary"], 999, datetime.now(UTC)
    )
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "rejected" and "another run holds" in result.message
    assert env.k8s.weights(*KEY) == [[("stable", 90), ("canary", 10)]]


async def test_scale_up_and_undo(env: Env) -> None:
    env.k8s.replicas[("ai-nutritionist", "nutrition-service")] = 3
    params = {"namespace": "ai-nutritionist", "deployment": "nutrition-service", "replicas": "6"}
    result = await env.executor.run(RUNBOOKS["scale-up"], params, execute=True, trigger="cli")
    assert result.status == "succeeded" and result.plans[0].lines == [
        "deployment ai-nutritionist/nutrition-service: replicas 3 → 6"
    ]
    assert env.k8s.replicas[("ai-nutritionist", "nutrition-service")] == 6
    await env.executor.undo(result.run_id, execute=True, trigger="cli")
    assert env.k8s.replicas[("ai-nutritionist", "nutrition-service")] == 3


async def test_bad_params_are_refused_before_anything_is_read(env: Env) -> None:
    with pytest.raises(RunbookError, match="param virtualservice is required"):
        await env.executor.run(rollback(), {"namespace": "ai-nutritionist"}, execute=True, trigger="cli")
    assert env.k8s.patches == []


async def test_without_a_cluster_runbooks_only_plan(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/rb.db")
    executor = Executor(store, None, clock=lambda: datetime.now(UTC))
    planned = await executor.run(rollback(), TARGET, execute=False, trigger="cli")
    assert planned.status == "planned" and "no Kubernetes cluster configured" in planned.plans[0].lines[0]
    with pytest.raises(RunbookError, match="runbooks can only plan"):
        await executor.run(rollback(), TARGET, execute=True, trigger="cli")
    await store.close()


async def with_prometheus(env: Env, aiohttp_server: AiohttpServer, values: list[float | None]) -> FakePrometheus:
    prometheus = FakePrometheus(values)
    server = await aiohttp_server(prometheus.app)
    env.executor._prometheus = Prometheus(str(server.make_url("")))
    return prometheus


CHECKED = {**TARGET, "service": "nutrition-service"}


def fast(runbook: Runbook) -> Runbook:
    """The shipped rollback with the check's timing shortened for tests."""
    steps = [
        s.model_copy(update={"timeout": timedelta(milliseconds=300), "interval": timedelta(milliseconds=50)})
        if isinstance(s, PrometheusCheck)
        else s
        for s in runbook.steps
    ]
    return runbook.model_copy(update={"steps": steps})


async def test_rollback_verifies_the_error_rate_recovers(env: Env, aiohttp_server: AiohttpServer) -> None:
    """After the rollback the 5xx ratio drops from 7 % to 0.4 %: the run succeeds without a warning."""
    prometheus = await with_prometheus(env, aiohttp_server, [0.07, 0.004])
    result = await env.executor.run(fast(rollback()), CHECKED, execute=True, trigger="cli")
    assert result.status == "succeeded" and result.message.startswith("applied: ")
    assert 'destination_service_name="nutrition-service"' in prometheus.queries[0]


async def test_rolled_back_but_still_failing_is_said(env: Env, aiohttp_server: AiohttpServer) -> None:
    """The error rate stays at 7 %: traffic moved (succeeded) but the result says it is still failing."""
    await with_prometheus(env, aiohttp_server, [0.07])
    result = await env.executor.run(fast(rollback()), CHECKED, execute=True, trigger="cli")
    assert result.status == "succeeded"
    assert result.message.startswith("applied, but still failing:") and "is 0.07, expected < 0.01" in result.message
    assert env.k8s.weights(*KEY) == [[("stable", 100), ("canary", 0)]]


async def test_check_with_on_fail_fail_fails_the_run(env: Env, aiohttp_server: AiohttpServer) -> None:
    await with_prometheus(env, aiohttp_server, [None])
    strict = fast(rollback())
    strict = strict.model_copy(
        update={
            "steps": [
                s.model_copy(update={"on_fail": "fail"}) if isinstance(s, PrometheusCheck) else s for s in strict.steps
            ]
        }
    )
    result = await env.executor.run(strict, CHECKED, execute=True, trigger="cli")
    assert result.status == "failed" and "is no data" in result.message
    assert "`alertbot runbook undo" in result.message


async def test_check_is_skipped_without_prometheus_or_service(env: Env) -> None:
    result = await env.executor.run(rollback(), CHECKED, execute=False, trigger="cli")
    assert "check skipped (no prometheus.url configured)" in result.plans[1].lines[0]
    result = await env.executor.run(rollback(), TARGET, execute=False, trigger="cli")
    assert "check skipped (its skip_unless value is empty)" in result.plans[1].lines[0]


async def test_rollout_restart(env: Env) -> None:
    env.k8s.replicas[("ai-nutritionist", "recipe-service")] = 2
    result = await env.executor.run(
        RUNBOOKS["restart"],
        {"namespace": "ai-nutritionist", "deployment": "recipe-service"},
        execute=True,
        trigger="cli",
    )
    assert result.status == "succeeded"
    assert ("ai-nutritionist", "recipe-service") in env.k8s.restarts
    with pytest.raises(RunbookError, match="changed nothing"):
        await env.executor.undo(result.run_id, execute=False, trigger="cli")


def owned(kind: str, api: str, name: str) -> dict[str, Any]:
    vs = seed_canary()
    vs["metadata"]["ownerReferences"] = [
        {"apiVersion": api, "kind": kind, "name": name, "uid": "1234", "controller": True}
    ]
    return vs


async def test_flagger_owned_virtualservice_is_not_patched(env: Env) -> None:
    """Flagger would revert a direct patch: the run fails explaining why and what to do; nothing changes."""
    env.k8s.add_virtualservice(owned("Canary", "flagger.app/v1beta1", "nutrition-service"))
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "failed"
    assert (
        "managed by Flagger (Canary 'nutrition-service')" in result.message
        and "would undo a direct patch" in result.message
    )
    assert env.k8s.patches == []


async def test_argo_rollout_is_aborted_instead(env: Env) -> None:
    """Argo Rollouts owns it: the rollback aborts the Rollout (status.abort), not the VirtualService."""
    env.k8s.add_virtualservice(owned("Rollout", "argoproj.io/v1alpha1", "nutrition-service"))
    env.k8s.rollouts[("ai-nutritionist", "nutrition-service")] = {"phase": "Progressing"}
    planned = await env.executor.run(rollback(), TARGET, execute=False, trigger="cli")
    assert "abort rollout ai-nutritionist/nutrition-service" in planned.plans[0].lines[0]
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "succeeded", result.message
    assert env.k8s.rollouts[("ai-nutritionist", "nutrition-service")]["abort"] is True
    assert env.k8s.weights(*KEY) == [[("stable", 90), ("canary", 10)]]  # Argo moves the traffic, not us


async def test_rollout_undo_puts_the_previous_revision_back_and_can_itself_be_undone(env: Env) -> None:
    """rollout-undo: revision 2 (1.4.3) → revision 1's template (1.4.2), like `kubectl rollout undo`; the
    Deployment controller makes that revision 3. Undoing the undo goes forward to 1.4.3 again."""
    env.k8s.add_deployment("ai-nutritionist", "nutrition-service", "registry.example.com/nutrition-service:1.4.2")
    env.k8s.set_image("ai-nutritionist", "nutrition-service", "registry.example.com/nutrition-service:1.4.3")
    params = {"namespace": "ai-nutritionist", "deployment": "nutrition-service"}
    result = await env.executor.run(RUNBOOKS["rollout-undo"], params, execute=True, trigger="cli:alice")
    assert result.status == "succeeded", result.message
    assert result.plans[0].lines == [
        "deployment ai-nutritionist/nutrition-service: revision 2 → 1's pod template "
        "(registry.example.com/nutrition-service:1.4.3 → "
        "registry.example.com/nutrition-service:1.4.2)"
    ]
    key = ("ai-nutritionist", "nutrition-service")
    assert env.k8s.image(*key) == "registry.example.com/nutrition-service:1.4.2"
    assert env.k8s.deployments[key]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    undone = await env.executor.undo(result.run_id, execute=True, trigger="cli:alice")
    assert undone.status == "succeeded", undone.message
    assert env.k8s.image(*key) == "registry.example.com/nutrition-service:1.4.3"


async def test_rollout_undo_refuses_a_deployment_changed_since_the_plan(env: Env) -> None:
    """Someone rolls out 1.4.4 between the read and the patch: the guarded patch fails, nothing changes."""
    env.k8s.add_deployment("ai-nutritionist", "nutrition-service", "registry.example.com/nutrition-service:1.4.2")
    env.k8s.set_image("ai-nutritionist", "nutrition-service", "registry.example.com/nutrition-service:1.4.3")
    plans = await env.executor.plan(
        RUNBOOKS["rollout-undo"], {"namespace": "ai-nutritionist", "deployment": "nutrition-service"}
    )
    env.k8s.set_image("ai-nutritionist", "nutrition-service", "registry.example.com/nutrition-service:1.4.4")
    with pytest.raises(RunbookError, match="changed since it was read"):
        await apply_step(plans[0], env.executor._context(), dry_run=False)
    assert env.k8s.image("ai-nutritionist", "nutrition-service") == "registry.example.com/nutrition-service:1.4.4"


async def test_restore_last_good_needs_a_proven_record(env: Env) -> None:
    """The watch's record of 90/10, healthy for the settle time, replaced by 50/50: restore plans 50/50 →
    90/10 and applies it; with no record it refuses and changes nothing."""
    params = {"namespace": "ai-nutritionist", "virtualservice": "nutrition-service-canary"}
    refused = await env.executor.run(RUNBOOKS["restore-last-good"], params, execute=True, trigger="cli:alice")
    assert refused.status == "failed" and "no last-known-good weights recorded" in refused.message

    now = datetime.now(UTC)  # the executor's clock: 50/50 has been in place 1 minute, not proven yet
    recorder = ChangeRecorder(env.store, lambda: now - timedelta(minutes=30), settle=timedelta(minutes=10))
    await recorder.listed("virtualservices", "ai-nutritionist", [env.k8s.virtualservices[KEY]])
    env.k8s.set_weights(*KEY, {"stable": 50, "canary": 50})
    later = ChangeRecorder(env.store, lambda: now - timedelta(minutes=1), settle=timedelta(minutes=10))
    await later.changed("virtualservices", "ai-nutritionist", env.k8s.virtualservices[KEY])
    result = await env.executor.run(RUNBOOKS["restore-last-good"], params, execute=True, trigger="cli:alice")
    assert result.status == "succeeded", result.message
    assert result.plans[0].lines[0] == (
        "virtualservice ai-nutritionist/nutrition-service-canary http[0] (primary): "
        "stable 50 → 90, canary 50 → 10 (last good at "
        f"{(now - timedelta(minutes=1)).isoformat()})"
    )
    assert env.k8s.weights(*KEY) == [[("stable", 90), ("canary", 10)]]


async def test_a_running_run_keeps_beating_so_no_one_takes_it_for_interrupted(tmp_path: Path) -> None:
    """While a run is under way (here a wait step) its process records a heartbeat; recovery of
    interrupted runs leaves it alone."""
    store = await Store.open(f"sqlite:///{tmp_path}/rb.db")
    executor = Executor(store, None, clock=lambda: datetime.now(UTC), heartbeat=timedelta(milliseconds=50))
    runbook = Runbook.model_validate({"name": "pause", "steps": [{"type": "wait", "duration": "600ms"}]})
    run = asyncio.create_task(executor.run(runbook, {}, execute=True, trigger="cli:alice"))
    try:

        async def beating() -> bool:
            records = await store.read(runbook_runs.history)  # none until the run has planned and started
            return any(r.heartbeat_at is not None and r.heartbeat_at > r.started_at for r in records)

        await wait_until(beating, what="a heartbeat after the start")
        later = datetime.now(UTC) + runbook_runs.RUN_STALE_AFTER / 2  # no beat missed yet by then
        assert await store.write(runbook_runs.recover_interrupted, now=later) == []
        result = await run
        assert result.status == "succeeded"
        [record] = await store.read(runbook_runs.history)
        assert record.status == "succeeded" and record.finished_at is not None
    finally:
        await store.close()


async def test_a_run_cancelled_by_shutdown_is_recorded_as_interrupted_not_succeeded(
    env: Env, aiohttp_server: AiohttpServer
) -> None:
    """alertbot stopping during a run (here: the rollback applied, then a Prometheus check that keeps
    polling) records it as failed and interrupted, naming the step it stopped at and what it had
    applied — never the `succeeded` with every step listed that it wrote before — and the rollback
    stays undoable."""
    prometheus = await with_prometheus(env, aiohttp_server, [0.5])  # never under the expectation
    runbook = Runbook.model_validate(
        {
            "name": "rollback-then-check",
            "params": [{"name": "namespace", "required": True}, {"name": "virtualservice", "required": True}],
            "steps": [
                {
                    "type": "istio.rollback",
                    "namespace": "{{ params.namespace }}",
                    "virtualservice": "{{ params.virtualservice }}",
                },
                {"type": "prometheus.check", "query": "error_ratio", "expect": "< 0.01", "timeout": "10m"},
            ],
        }
    )
    run = asyncio.create_task(env.executor.run(runbook, TARGET, execute=True, trigger="cli:alice"))

    async def checking() -> bool:  # the check queries only once the rollback step has returned
        return bool(prometheus.queries)

    await wait_until(checking, what="the check step under way")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    [record] = await env.store.read(runbook_runs.history)
    assert record.status == "failed", record
    assert record.result.startswith("step 1 (prometheus.check) interrupted"), record.result
    assert "Applied before it: step 0" in record.result
    assert [a["index"] for a in record.applied] == [0]  # the rollback, so that undo can restore it
    assert env.k8s.weights(*KEY) == [[("stable", 100), ("canary", 0)]]
    undone = await env.executor.undo(record.id, execute=True, trigger="cli:alice")
    assert undone.status == "succeeded" and env.k8s.weights(*KEY) == [[("stable", 90), ("canary", 10)]]


async def test_an_approved_run_applies_only_the_plan_its_approvers_saw(env: Env) -> None:
    """Approval executes the plan that was shown: when the VirtualService changes between the approval
    and the execution, the run is rejected with the reason and nothing is patched — never a rollback
    from weights nobody saw."""
    shown = await env.executor.plan(rollback(), rollback().resolve_params(TARGET))
    now = datetime.now(UTC)

    async def approve() -> int:
        run_id = await env.store.write(
            runbook_runs.queue,
            runbook="emergency-rollback",
            params=TARGET,
            trigger="slack:UALICE",
            automation=None,
            target_key="",
            status=runbook_runs.RunStatus.PENDING,
            now=now,
            plan=[p.to_json() for p in shown],
        )
        counted = await env.store.write(
            runbook_runs.add_approval, run_id, by="slack:UBOB", needed=1, now=now, requested_after=now
        )
        assert counted is not None and counted[0] == "approved"
        return run_id

    changed = await approve()
    env.k8s.set_weights(*KEY, {"stable": 70, "canary": 30})  # someone edits it after the approval
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="slack:UALICE", run_id=changed)
    assert result.status == "rejected" and "changed after the plan was approved" in result.message
    assert env.k8s.weights(*KEY) == [[("stable", 70), ("canary", 30)]]

    env.k8s.set_weights(*KEY, {"stable": 90, "canary": 10})  # as shown: the approved plan applies
    unchanged = await approve()
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="slack:UALICE", run_id=unchanged)
    assert result.status == "succeeded"
    assert env.k8s.weights(*KEY) == [[("stable", 100), ("canary", 0)]]


# --- Argo CD --------------------------------------------------------------------------------------


def synced_by_argocd(obj: dict[str, Any], app: str) -> dict[str, Any]:
    """``obj`` as Argo CD's annotation tracking marks it (argocd.argoproj.io/tracking-id, the
    default since Argo CD 3.0: APP:GROUP/KIND:NAMESPACE/NAME)."""
    meta = obj["metadata"]
    group_kind = "networking.istio.io/VirtualService" if obj["kind"] == "VirtualService" else "apps/Deployment"
    meta.setdefault("annotations", {})["argocd.argoproj.io/tracking-id"] = (
        f"{app}:{group_kind}:{meta['namespace']}/{meta['name']}"
    )
    return obj


SELF_HEAL = {"automated": {"prune": True, "selfHeal": True}}


@pytest.fixture
async def argocd_env(aiohttp_server: AiohttpServer, tmp_path: Path) -> AsyncIterator[Env]:
    fake = FakeKubernetes()
    fake.add_virtualservice(synced_by_argocd(seed_canary(), "nutrition"))
    e = await make_env(aiohttp_server, tmp_path, fake)
    yield e
    await e.store.close()


async def test_an_argocd_application_with_self_heal_refuses_the_rollback_and_says_what_to_do(
    argocd_env: Env,
) -> None:
    """Self-heal would put the canary weights back within seconds: nothing is patched, and the
    message names the Application and the two ways out."""
    env = argocd_env
    env.k8s.add_application("argocd", "nutrition", SELF_HEAL)
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "failed"
    assert result.message.startswith(
        "planning failed: virtualservice ai-nutritionist/nutrition-service-canary is synced by Argo CD Application "
        "argocd/nutrition with automated self-heal: Argo CD would revert this change within seconds."
    )
    assert "Roll back in Git" in result.message and "argocd app set nutrition --self-heal=false" in result.message
    assert env.k8s.patches == [] and env.k8s.weights(*KEY) == [[("stable", 90), ("canary", 10)]]


@pytest.mark.parametrize(
    ("sync_policy", "note"),
    [
        ({"automated": {"prune": True}}, "automatically, without self-heal: this change holds until"),
        ({"automated": {"selfHeal": True, "enabled": False}}, "it shows OutOfSync until Git matches"),
        ({}, "it shows OutOfSync until Git matches"),
    ],
)
async def test_an_argocd_application_without_self_heal_lets_the_rollback_through_with_a_note(
    argocd_env: Env, sync_policy: dict[str, Any], note: str
) -> None:
    env = argocd_env
    env.k8s.add_application("argocd", "nutrition", sync_policy)
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "succeeded", result.message
    assert note in result.plans[0].lines[-1] and "Argo CD Application argocd/nutrition" in result.plans[0].lines[-1]
    assert env.k8s.weights(*KEY) == [[("stable", 100), ("canary", 0)]]


async def test_an_unreadable_argocd_application_does_not_block_an_emergency_rollback(argocd_env: Env) -> None:
    env = argocd_env
    env.k8s.add_application("argocd", "nutrition", SELF_HEAL)
    env.k8s.forbidden.add(("get", "applications"))
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "succeeded", result.message
    assert result.plans[0].lines[-1] == (
        "warning: virtualservice ai-nutritionist/nutrition-service-canary is synced by Argo CD Application "
        "argocd/nutrition, which alertbot could not read (see its log): if it syncs automatically with "
        "self-heal, Argo CD reverts this change"
    )  # the reason (forbidden) is logged: the plan's text must not change with a passing error


async def test_an_application_in_another_namespace_is_read_there_and_guards_a_rollout_undo(env: Env) -> None:
    """Apps in any namespace: the tracking id's APP is NAMESPACE_NAME. A Deployment synced with
    self-heal refuses `rollout undo` as a VirtualService does."""
    env.k8s.add_deployment("ai-nutritionist", "nutrition-service", "registry.example.com/nutrition-service:1.4.2")
    env.k8s.set_image("ai-nutritionist", "nutrition-service", "registry.example.com/nutrition-service:1.4.3")
    key = ("ai-nutritionist", "nutrition-service")
    synced_by_argocd(env.k8s.deployments[key], "team-apps_nutrition")
    env.k8s.add_application("team-apps", "nutrition", SELF_HEAL)
    params = {"namespace": "ai-nutritionist", "deployment": "nutrition-service"}
    result = await env.executor.run(RUNBOOKS["rollout-undo"], params, execute=True, trigger="cli")
    assert result.status == "failed"
    assert "Argo CD Application team-apps/nutrition with automated self-heal" in result.message
    assert env.k8s.image(*key) == "registry.example.com/nutrition-service:1.4.3"


async def test_applications_are_read_in_the_configured_namespace(aiohttp_server: AiohttpServer, tmp_path: Path) -> None:
    """kubernetes.argocd_namespace: Argo CD installed elsewhere (e.g. openshift-gitops) is still read."""
    fake = FakeKubernetes()
    fake.add_virtualservice(synced_by_argocd(seed_canary(), "nutrition"))
    fake.add_application("openshift-gitops", "nutrition", SELF_HEAL)
    e = await make_env(aiohttp_server, tmp_path, fake)
    e.executor._argocd_namespace = "openshift-gitops"  # as bootstrap sets it from the config
    try:
        result = await e.executor.run(rollback(), TARGET, execute=True, trigger="cli")
        assert result.status == "failed" and "Application openshift-gitops/nutrition" in result.message
    finally:
        await e.store.close()


async def test_a_tracking_id_naming_another_object_is_not_its_tracking(argocd_env: Env) -> None:
    """An annotation copied with a manifest names another object: Argo CD ignores it, so does alertbot."""
    env = argocd_env
    vs = env.k8s.virtualservices[KEY]
    vs["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = (
        "nutrition:networking.istio.io/VirtualService:ai-nutritionist/recipe-service-canary"
    )
    env.k8s.add_application("argocd", "nutrition", SELF_HEAL)
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "succeeded", result.message
    assert not any("Argo CD" in line for line in result.plans[0].lines)


async def test_an_application_an_applicationset_generates_is_named_with_its_owner(argocd_env: Env) -> None:
    """Turning self-heal off on a generated Application does not last: the message says where to."""
    env = argocd_env
    env.k8s.add_application("argocd", "nutrition", SELF_HEAL)
    env.k8s.applications[("argocd", "nutrition")]["metadata"]["ownerReferences"] = [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": "services", "uid": "1"}
    ]
    result = await env.executor.run(rollback(), TARGET, execute=True, trigger="cli")
    assert result.status == "failed"
    assert result.message.endswith(
        "It is generated by ApplicationSet services, which sets its sync policy: change self-heal there."
    )
