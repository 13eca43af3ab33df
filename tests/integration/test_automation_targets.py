"""Alert labels cannot choose what an automation changes: each automation's rendered target must match
its ``targets`` allow-list, and names that end up in a Kubernetes API path are DNS-1123 names."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from alertbot.errors import RunbookUsageError
from alertbot.runbooks.automations import automation_target_problem
from alertbot.runbooks.executor import Executor
from alertbot.runbooks.k8s import Kubernetes
from alertbot.runbooks.loader import load_runbooks
from alertbot.settings import parse_config
from alertbot.store import incident_notes, runbook_runs
from alertbot.store.engine import Store
from tests.conftest import ROOT, MakeHarness
from tests.fakes.kubernetes import FakeKubernetes, seed_canary
from tests.helpers import PAYLOADS, alertbot_cli, payload_json, wait_until
from tests.slack_client import SECRET, click

FIRING = "am-higherrorrate-nutrition-service-firing.json"
ROLLBACK: dict[str, Any] = {
    "name": "rollback-canary",
    "match": {"severity": "critical", "canary": "true"},
    "runbook": "emergency-rollback",
    "mode": "auto",
    "params": {"namespace": "{{ labels.namespace }}", "virtualservice": "{{ labels.virtualservice }}"},
    "targets": ["ai-nutritionist/*"],
}


def hostile_vs() -> dict[str, Any]:
    """A VirtualService outside the automation's namespace, which an alert's labels could name."""
    vs = seed_canary()
    vs["metadata"] = {"name": "payments", "namespace": "kube-system"}
    return vs


@pytest.fixture
def k8s(k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]) -> tuple[FakeKubernetes, Callable[[], Kubernetes]]:
    """The shared fake cluster, plus a VirtualService outside the allow-list and a Deployment."""
    fake, _ = k8s
    fake.add_virtualservice(hostile_vs())
    fake.add_deployment("ai-nutritionist", "recipe-service", "recipe:1")
    return k8s


def relabelled(**labels: str) -> bytes:
    body = payload_json(FIRING)
    for alert in body["alerts"]:
        alert["labels"].update(labels)
    body["commonLabels"].update(labels)
    return json.dumps(body).encode()


async def test_an_alert_cannot_point_an_automation_outside_its_targets(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """An alert labelled namespace=kube-system, virtualservice=payments matches rollback-canary, whose
    targets are ai-nutritionist/*: the run is recorded as rejected naming the target and the allow-list,
    the incident says so, and the Kubernetes API receives no request at all."""
    fake, kube = k8s
    h = await make_harness({"automations": [ROLLBACK]}, kube=kube)
    resp = await h.post_payload(relabelled(namespace="kube-system", virtualservice="payments"))
    assert resp.status == 200

    async def finished() -> bool:
        found = await h.state.store.read(runbook_runs.history)
        return bool(found) and found[0].status not in ("queued", "running")

    await wait_until(finished, what="the automation's run to end")
    await h.automations.idle()
    (run,) = await h.state.store.read(runbook_runs.history)
    assert run.status == "rejected"
    assert "kube-system/payments" in run.result and "ai-nutritionist/*" in run.result
    notes = await h.state.store.read(incident_notes.for_incidents, [1])
    assert any("kube-system/payments" in n.text and n.kind == "automation_rejected" for n in notes), notes
    assert fake.log == []
    assert fake.weights("kube-system", "payments") == [[("stable", 90), ("canary", 10)]]


async def test_a_target_inside_the_allow_list_still_runs(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """The seed's canary alert (ai-nutritionist/nutrition-service-canary) is inside ai-nutritionist/*: it
    rolls back as before."""
    fake, kube = k8s
    h = await make_harness({"automations": [ROLLBACK]}, kube=kube)
    await h.post_file(FIRING)
    await wait_until(
        lambda: fake.weights("ai-nutritionist", "nutrition-service-canary") == [[("stable", 100), ("canary", 0)]],
        what="rollback applied",
    )


async def test_an_automation_without_targets_that_templates_its_target_runs_nothing(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """Fail closed: an automation that takes its target from labels but declares no targets (which
    check-config refuses) has its runs rejected, and nothing is sent to Kubernetes."""
    fake, kube = k8s
    no_targets = {k: v for k, v in ROLLBACK.items() if k != "targets"}
    h = await make_harness({"automations": [no_targets]}, kube=kube)
    await h.post_payload(relabelled(namespace="kube-system", virtualservice="payments"))

    async def finished() -> bool:
        found = await h.state.store.read(runbook_runs.history)
        return bool(found) and found[0].status not in ("queued", "running")

    await wait_until(finished, what="the automation's run to end")
    await h.automations.idle()
    (run,) = await h.state.store.read(runbook_runs.history)
    assert run.status == "rejected" and "targets" in run.result
    assert fake.log == []


@pytest.mark.parametrize(
    ("runbook", "params"),
    [
        ("scale-up", {"namespace": "ai-nutritionist", "deployment": ".", "replicas": "3"}),
        ("scale-up", {"namespace": "ai-nutritionist", "deployment": "..", "replicas": "3"}),
        ("restart", {"namespace": "ai-nutritionist", "deployment": "a/../../b"}),
        (
            "canary-promote",
            {"namespace": "ai-nutritionist", "virtualservice": ".", "canary_weight": "0", "stable_weight": "100"},
        ),
        ("emergency-rollback", {"namespace": "..", "virtualservice": "checkout"}),
    ],
)
async def test_names_in_api_paths_are_dns_1123(
    tmp_path: Path, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]], runbook: str, params: dict[str, str]
) -> None:
    """A name that would change the API path (``.``, ``..``, ``/``) is refused before anything is read:
    ``deployment="."`` once made a GET of ``…/deployments/scale``, a different object."""
    fake, kube = k8s
    store = await Store.open(f"sqlite:///{tmp_path}/alertbot.db")
    try:
        executor = Executor(store, kube, clock=lambda: datetime.now(UTC))
        runbooks = load_runbooks(ROOT / "runbooks")
        with pytest.raises(RunbookUsageError, match="DNS-1123"):
            await executor.run(runbooks[runbook], params, execute=True, trigger="cli:test")
    finally:
        await store.close()
    assert fake.log == []


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return alertbot_cli("check-config", str(path))


def test_check_config_requires_targets_for_a_target_templated_from_labels(tmp_path: Path) -> None:
    """check-config exits 2 naming ``automations[0].targets`` for an automation whose target params
    come from alert labels without an allow-list; with ``targets`` it is ok; a malformed pattern is an
    error naming its key path."""
    config = tmp_path / "alertbot.yaml"
    automation = {k: v for k, v in ROLLBACK.items() if k != "targets"}
    config.write_text(yaml.safe_dump({"runbooks": {"dir": str(ROOT / "runbooks")}, "automations": [automation]}))
    refused = check_config(config)
    assert refused.returncode == 2, refused.stdout
    assert "automations[0].targets" in refused.stderr and "params.namespace" in refused.stderr
    assert "Traceback" not in refused.stderr
    config.write_text(
        yaml.safe_dump({"runbooks": {"dir": str(ROOT / "runbooks")}, "automations": [{**automation, "targets": ["x"]}]})
    )
    malformed = check_config(config)
    assert malformed.returncode == 2 and "automations[0].targets" in malformed.stderr
    config.write_text(yaml.safe_dump({"runbooks": {"dir": str(ROOT / "runbooks")}, "automations": [ROLLBACK]}))
    ok = check_config(config)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("manifest", ["alertbot.yaml", "alertbot-single.yaml"])
def test_the_shipped_deployments_allow_list_their_automations(manifest: str) -> None:
    """deploy/'s rollback-canary takes its target from labels, so it must carry ``targets``."""
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / manifest).read_text()) if d]
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    config = parse_config(yaml.safe_load(config_map["data"]["alertbot.yaml"]))
    assert config.automations and all(a.targets for a in config.automations)
    assert automation_target_problem(config.automations, load_runbooks(ROOT / "runbooks")) is None


def test_replay_says_which_target_an_automation_would_act_on(tmp_path: Path) -> None:
    """`alertbot replay` shows the target a matching automation would act on, or that it would be
    rejected as outside its targets. (One payload per run: the two are the same alert, and replay
    takes the payloads of one run in order, as the daemon would — the second a repeat.)"""
    config = tmp_path / "alertbot.yaml"
    config.write_text(yaml.safe_dump({"runbooks": {"dir": str(ROOT / "runbooks")}, "automations": [ROLLBACK]}))
    hostile = tmp_path / "hostile.json"
    hostile.write_bytes(relabelled(namespace="kube-system", virtualservice="payments"))
    lines = []
    for payload in (hostile, PAYLOADS / FIRING):
        result = alertbot_cli("replay", "--config", str(config), str(payload))
        assert result.returncode == 0, result.stderr
        lines += [line for line in result.stdout.splitlines() if "would start automation" in line]
    assert len(lines) == 2, lines
    assert "would be rejected: target kube-system/payments is outside" in lines[0]
    assert lines[1].endswith("on ai-nutritionist/nutrition-service-canary")


async def test_an_approved_run_outside_the_targets_is_rejected_too(
    make_harness: MakeHarness, k8s: tuple[FakeKubernetes, Callable[[], Kubernetes]]
) -> None:
    """mode: approve — the pending run an out-of-list alert asked for, once approved in Slack, is
    rejected with the reason instead of run; Kubernetes receives nothing."""
    fake, kube = k8s
    h = await make_harness(
        {"automations": [{**ROLLBACK, "mode": "approve"}], "slack": {"runbook_approvers": ["UONCALL"]}},
        kube=kube,
        secret_values={"slack_signing_secret": SECRET},
    )
    await h.post_payload(relabelled(namespace="kube-system", virtualservice="payments"))
    (pending,) = await h.state.store.read(runbook_runs.history)
    assert pending.status == "pending"
    await click(h, "runbook_approve", pending.id, user="UONCALL", response_url="")

    async def rejected() -> bool:
        run = await h.state.store.read(runbook_runs.get, pending.id)
        return run is not None and run.status == "rejected"

    await wait_until(rejected, what="the approved run to be rejected")
    await h.slack.stop()
    run = await h.state.store.read(runbook_runs.get, pending.id)
    assert run is not None and "outside automation rollback-canary's targets" in run.result
    assert fake.log == []
