"""Automations through the HTTP app: a critical canary alert rolls the canary back (fake Kubernetes API)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Connection

from alertbot.runbooks.k8s import Kubernetes
from alertbot.store import runbook_runs
from alertbot.store.engine import Store
from tests.conftest import ROOT, Harness, MakeHarness
from tests.fakes.kubernetes import FakeKubernetes
from tests.helpers import payload_json, wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"
KEY = ("ai-nutritionist", "nutrition-service-canary")
ROLLBACK = {
    "name": "rollback-canary",
    "match": {"severity": "critical", "canary": "true"},
    "runbook": "emergency-rollback",
    "mode": "auto",
    "cooldown": "10m",
    "params": {"namespace": "{{ labels.namespace }}", "virtualservice": "{{ labels.virtualservice }}"},
    "targets": ["ai-nutritionist/*"],
}


async def runs(h: Harness) -> list[runbook_runs.RunRecord]:
    return list(await h.state.store.read(runbook_runs.history))


async def test_auto_rollback_on_critical_canary_alert(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """The seed's HighErrorRate on the canary (7.2 %) → emergency-rollback runs at once: 100/0."""
    fake, kube = k8s
    h = await make_harness({"automations": [ROLLBACK]}, kube=kube)
    await h.post_file(FIRING)
    await wait_until(lambda: fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]], what="rollback applied")
    await h.automations.idle()
    (run,) = await runs(h)
    assert (run.status, run.automation, run.trigger) == (
        "succeeded",
        "rollback-canary",
        "alert:1 automation:rollback-canary",
    )
    assert run.params == {
        "namespace": "ai-nutritionist",
        "virtualservice": "nutrition-service-canary",
        "stable_subset": "stable",
        "service": "",
    }
    metrics = await (await h.client.get("/metrics")).text()
    assert 'alertbot_runbook_runs_total{outcome="succeeded",runbook="emergency-rollback"} 1.0' in metrics


async def test_flapping_alert_runs_once_per_cooldown(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """Fire, resolve, fire again (a new episode) inside the cooldown: one run, not two."""
    fake, kube = k8s
    h = await make_harness({"automations": [ROLLBACK]}, kube=kube)
    await h.post_file(FIRING)
    await h.post_file("am-higherrorrate-nutrition-service-resolved.json")
    again = payload_json(FIRING)
    again["alerts"][0]["startsAt"] = "2026-11-29T21:00:00Z"
    await h.post_payload(json.dumps(again))
    await wait_until(lambda: fake.weights(*KEY)[0][0] == ("stable", 100), what="rollback")
    await h.automations.idle()
    assert [r.automation for r in await runs(h)] == ["rollback-canary"]


async def test_approve_mode_stores_a_pending_run_and_changes_nothing(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    fake, kube = k8s
    h = await make_harness({"automations": [{**ROLLBACK, "mode": "approve"}]}, kube=kube)
    await h.post_file(FIRING)
    (run,) = await runs(h)
    assert run.status == "pending"
    assert fake.patches == [] and fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]


async def test_global_dry_run_only_plans(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """runbooks.dry_run: automations plan (server-side dry run) and change nothing."""
    fake, kube = k8s
    h = await make_harness(
        {"automations": [ROLLBACK], "runbooks": {"dir": str(ROOT / "runbooks"), "dry_run": True}}, kube=kube
    )
    await h.post_file(FIRING)

    async def planned() -> bool:
        return [r.status for r in await runs(h)] == ["planned"]

    await wait_until(planned, what="planned run")
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]
    assert all(p["dry_run"] for p in fake.patches)


async def test_missing_label_is_recorded_not_run(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """An alert without the label a param needs: the run is recorded as failed with why; nothing changes."""
    fake, kube = k8s
    h = await make_harness({"automations": [{**ROLLBACK, "match": {"severity": "critical"}}]}, kube=kube)
    await h.post_file("am-servicedown-recipe-service-firing.json")
    (run,) = await runs(h)
    assert run.status == "failed" and "the alert has no label virtualservice" in run.result
    assert fake.patches == []


async def test_a_run_interrupted_by_a_crash_is_released_on_start(
    make_harness: MakeHarness, db_url: str, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """A run left `running` (process killed mid-run) holds its lock; once its heartbeat is older than
    RUN_STALE_AFTER the next start fails it with a reason and releases the lock, so the target can be
    acted on again. A run that still beats (another live replica's) is left alone."""
    fake, kube = k8s
    store = await Store.open(db_url)
    now = datetime.now(UTC)
    dead = await store.write(
        runbook_runs.queue,
        runbook="emergency-rollback",
        params={},
        trigger="cli:x",
        automation="",
        target_key="",
        status="running",
        now=now - timedelta(minutes=5),
    )
    await store.write(runbook_runs.beat, dead, now - runbook_runs.RUN_STALE_AFTER - timedelta(seconds=1))
    await store.write(runbook_runs.lock, ["virtualservice ai-nutritionist/nutrition-service-canary"], dead, now)
    alive = await store.write(
        runbook_runs.queue,
        runbook="emergency-rollback",
        params={},
        trigger="cli:y",
        automation="",
        target_key="",
        status="running",
        now=now - timedelta(minutes=5),
    )
    await store.write(runbook_runs.beat, alive, now)
    await store.write(runbook_runs.lock, ["virtualservice elsewhere/other"], alive, now)
    await store.close()
    h = await make_harness({"automations": [ROLLBACK]}, kube=kube)
    await h.post_file(FIRING)
    await wait_until(lambda: fake.weights(*KEY)[0][0] == ("stable", 100), what="rollback after recovery")
    interrupted = await h.state.store.read(runbook_runs.get, dead)
    assert interrupted is not None and interrupted.status == "failed" and "interrupted" in interrupted.result
    running = await h.state.store.read(runbook_runs.get, alive)
    assert running is not None and running.status == "running"


async def test_a_lock_left_by_a_dead_process_is_taken_over_without_a_restart(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """The replica running a rollback dies and nothing restarts: once the run stops beating, the
    next run on the target (here the automation for a new alert) fails the dead run and goes ahead."""
    fake, kube = k8s
    h = await make_harness({"automations": [ROLLBACK]}, kube=kube)
    now = datetime.now(UTC)

    def left_running(conn: Connection, beat_at: datetime) -> int:
        run_id = runbook_runs.queue(
            conn,
            runbook="emergency-rollback",
            params={},
            trigger="alert:0",
            automation="",
            target_key="",
            status="running",
            now=beat_at,
        )
        runbook_runs.beat(conn, run_id, beat_at)
        assert (
            runbook_runs.lock(conn, ["virtualservice ai-nutritionist/nutrition-service-canary"], run_id, beat_at)
            is None
        )
        return run_id

    dead = await h.state.store.write(left_running, now - runbook_runs.RUN_STALE_AFTER - timedelta(seconds=1))
    await h.post_file(FIRING)
    await wait_until(lambda: fake.weights(*KEY)[0][0] == ("stable", 100), what="the rollback")
    record = await h.state.store.read(runbook_runs.get, dead)
    assert record is not None and record.status == "failed" and "interrupted" in record.result


async def test_an_inhibited_alert_starts_no_automation(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """Automations come after inhibition (docs/architecture.md): a warning muted by its service's
    firing critical (the default inhibit rule) asks for no run, as a silenced one asks for none."""
    _, kube = k8s
    scale_up = {
        **ROLLBACK,
        "name": "scale-on-load",
        "match": {"alertname": "HighLoad"},
        "mode": "approve",
        "params": {"namespace": "ai-nutritionist", "virtualservice": "nutrition-service-canary"},
    }
    h = await make_harness({"automations": [scale_up]}, kube=kube)
    await h.post_file(FIRING)  # critical, nutrition-service: the inhibition source
    await h.post_file("am-highload-nutrition-service-firing.json")  # warning, same service and namespace
    incidents = await (await h.client.get("/api/v1/incidents")).json()
    (load,) = [i for i in incidents if i["labels"]["alertname"] == "HighLoad"]
    assert load["suppressed_by"] and "inhibited" in load["suppressed_by"], load
    assert await runs(h) == []
