"""Runbook runs through the HTTP API (/api/v1/runs), as `alertbot --url ... runbook ...` uses it:
dry run first, apply, audit, undo, approve a pending request, cancel — against a fake Kubernetes API,
behind the API token, through the same policy layer as Slack."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from alertbot.runbooks.k8s import Kubernetes
from alertbot.services.roles import Actor
from alertbot.services.runs import OperatorRuns
from tests.conftest import Harness, MakeHarness
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.prometheus import FakePrometheus
from tests.helpers import TEST_RUNBOOKS, wait_until

TOKEN = "runs-api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STREAM = {**AUTH, "Accept": "application/x-ndjson"}
KEY = ("ai-nutritionist", "nutrition-service-canary")
TARGET = {"namespace": "ai-nutritionist", "virtualservice": "nutrition-service-canary"}
Cluster = tuple[FakeKubernetes, Callable[[], Kubernetes]]


async def harness(make_harness: MakeHarness, k8s: Cluster, **config: Any) -> Harness:
    return await make_harness(config, secret_values={"api_token": TOKEN}, kube=k8s[1])


async def waiting_harness(
    make_harness: MakeHarness, k8s: Cluster, aiohttp_server: AiohttpServer
) -> tuple[Harness, FakePrometheus]:
    """alertbot with the rollback-and-check runbook (tests/data/runbooks) and a Prometheus whose error
    ratio stays failing (0.2) until the test sets it healthy: a run that waits until the test says."""
    prometheus = FakePrometheus([0.2])
    prom_server = await aiohttp_server(prometheus.app)
    h = await harness(
        make_harness, k8s, runbooks={"dir": str(TEST_RUNBOOKS)}, prometheus={"url": str(prom_server.make_url(""))}
    )
    return h, prometheus


async def post(h: Harness, path: str, body: dict[str, Any], headers: dict[str, str] = AUTH) -> tuple[int, Any]:
    resp = await h.client.post(path, json=body, headers=headers)
    if resp.content_type == "application/x-ndjson":
        return resp.status, [json.loads(line) for line in (await resp.text()).splitlines()]
    return resp.status, await resp.json()


async def get(h: Harness, path: str) -> Any:
    resp = await h.client.get(path, headers=AUTH)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_run_is_planned_applied_audited_and_undone_through_the_api(
    make_harness: MakeHarness, k8s: Cluster
) -> None:
    fake, _ = k8s
    h = await harness(make_harness, k8s)
    names = [r["name"] for r in await get(h, "/api/v1/runbooks")]
    assert "emergency-rollback" in names

    status, planned = await post(h, "/api/v1/runs", {"runbook": "emergency-rollback", "params": TARGET})
    assert status == 200, planned
    assert planned["status"] == "planned" and planned["ok"] is True
    assert planned["plan"][0]["lines"] == [
        "virtualservice ai-nutritionist/nutrition-service-canary http[0] (primary): stable 90 → 100, canary 10 → 0"
    ]
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]

    body = {"runbook": "emergency-rollback", "params": TARGET, "execute": True, "requested_by": "cli:alice"}
    status, applied = await post(h, "/api/v1/runs", body)
    assert status == 200 and applied["status"] == "succeeded", applied
    assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]

    history = await get(h, "/api/v1/runs")
    assert [(r["id"], r["status"], r["trigger"]) for r in history] == [
        (applied["run_id"], "succeeded", "cli:alice"),
        (planned["run_id"], "planned", "api"),
    ]
    assert (await get(h, f"/api/v1/runs/{applied['run_id']}"))["applied"] != []

    status, undone = await post(h, f"/api/v1/runs/{applied['run_id']}/undo", {"execute": True, "requested_by": "bob"})
    assert status == 200 and undone["status"] == "succeeded", undone
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]
    assert (await get(h, "/api/v1/runs?limit=1"))[0]["undo_of"] == applied["run_id"]


async def test_a_streamed_run_sends_each_step_as_it_starts_and_ends_then_the_result(
    make_harness: MakeHarness, k8s: Cluster
) -> None:
    h = await harness(make_harness, k8s)
    body = {"runbook": "emergency-rollback", "params": TARGET, "execute": True}
    status, lines = await post(h, "/api/v1/runs", body, headers=STREAM)
    assert status == 200
    steps = [(e["index"], e["type"], e["state"]) for e in lines if e["event"] == "step"]
    assert steps == [
        (0, "istio.rollback", "started"),
        (0, "istio.rollback", "done"),
        (1, "prometheus.check", "started"),
        (1, "prometheus.check", "done"),
        (2, "notify", "started"),
        (2, "notify", "done"),
    ]
    assert lines[-1]["event"] == "result" and lines[-1]["status"] == "succeeded"


async def test_changing_production_through_the_api_needs_the_token_configured(
    make_harness: MakeHarness, k8s: Cluster
) -> None:
    """Without an API token (loopback, or security.allow_unauthenticated) anyone who reaches the port
    could roll traffic back: dry runs and the audit log work, applying is refused (403)."""
    fake, factory = k8s
    h = await make_harness(kube=factory)
    status, planned = await post(h, "/api/v1/runs", {"runbook": "emergency-rollback", "params": TARGET}, {})
    assert status == 200 and planned["status"] == "planned"
    refused: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/runs", {"runbook": "emergency-rollback", "params": TARGET, "execute": True}),
        (f"/api/v1/runs/{planned['run_id']}/undo", {"execute": True}),
        (f"/api/v1/runs/{planned['run_id']}/approve", {}),
    ]
    for path, body in refused:
        status, answer = await post(h, path, body, {})
        assert status == 403, (path, answer)
        assert "needs the API token" in answer["error"]["message"]
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]
    assert (await h.client.get("/api/v1/runs")).status == 200


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"runbook": "no-such", "params": {}}, 400, "runbook: no runbook 'no-such' (have:"),
        ({"runbook": "emergency-rollback", "params": {"namespace": "x"}}, 400, "param virtualservice is required"),
        ({"runbook": "emergency-rollback", "params": {**TARGET, "colour": "red"}}, 400, "params: unknown param"),
        ({"runbook": "emergency-rollback", "params": TARGET, "requested_by": "alert:1"}, 400, "requested_by:"),
        ({"runbook": "emergency-rollback", "params": TARGET, "requested_by": "slack:UX"}, 400, "requested_by:"),
        ({"runbook": "emergency-rollback", "params": TARGET, "now": True}, 400, "now: unknown key"),
        ({"runbook": "emergency-rollback", "params": {"namespace": 3}}, 400, "params.namespace:"),
    ],
)
async def test_bad_run_requests_are_refused_before_anything_is_read(
    make_harness: MakeHarness, k8s: Cluster, body: dict[str, Any], status: int, message: str
) -> None:
    fake, _ = k8s
    h = await harness(make_harness, k8s)
    got, answer = await post(h, "/api/v1/runs", {**body, "execute": True}, STREAM)
    assert got == status, answer
    assert message in answer["error"]["message"]
    assert fake.patches == [] and await get(h, "/api/v1/runs") == []


async def test_undo_approve_and_cancel_name_what_is_wrong(make_harness: MakeHarness, k8s: Cluster) -> None:
    h = await harness(make_harness, k8s)
    _, planned = await post(h, "/api/v1/runs", {"runbook": "emergency-rollback", "params": TARGET})
    status, answer = await post(h, f"/api/v1/runs/{planned['run_id']}/undo", {"execute": True})
    assert status == 400 and "changed nothing: nothing to undo" in answer["error"]["message"]
    for verb in ("undo", "approve", "cancel"):
        assert (await post(h, f"/api/v1/runs/999/{verb}", {}))[0] == 404
        assert (await post(h, f"/api/v1/runs/abc/{verb}", {}))[0] == 404
    status, answer = await post(h, f"/api/v1/runs/{planned['run_id']}/cancel", {"by": "carol"})
    assert status == 400 and "is planned: only a pending run can be cancelled" in answer["error"]["message"]
    assert (await h.client.post("/api/v1/runs", json={"runbook": "x"})).status == 401  # no token


async def test_a_slack_request_is_approved_through_the_api_and_runs_there(
    make_harness: MakeHarness, k8s: Cluster
) -> None:
    """Someone asked in Slack; an approver on the CLI (`alertbot --url ... runbook approve ID`)
    approves it: it runs with its original trigger, and the approver is recorded."""
    fake, _ = k8s
    h = await harness(make_harness, k8s)
    approvals = h.state.services.approvals if h.state.services else None
    assert approvals is not None
    runbook, params = approvals.prepare("emergency-rollback", TARGET)
    proposal = await approvals.propose(Actor.slack("UREQ"), runbook, params)
    other = await approvals.propose(Actor.slack("UREQ"), runbook, params)

    status, lines = await post(h, f"/api/v1/runs/{proposal.run_id}/approve", {"by": "cli:carol"}, STREAM)
    assert status == 200
    final = lines[-1]
    assert final["event"] == "result" and final["verdict"] == "approved", final
    assert final["approvers"] == ["cli:carol"] and final["result"]["status"] == "succeeded"
    assert [e["state"] for e in lines if e["event"] == "step"][:2] == ["started", "done"]
    assert fake.weights(*KEY) == [[("stable", 100), ("canary", 0)]]
    record = await get(h, f"/api/v1/runs/{proposal.run_id}")
    assert (record["trigger"], record["approvals"]) == ("slack:UREQ", ["cli:carol"])

    _, again = await post(h, f"/api/v1/runs/{proposal.run_id}/approve", {"by": "cli:dave"})
    assert (again["verdict"], again["state"]) == ("not_pending", "succeeded")

    status, cancelled = await post(h, f"/api/v1/runs/{other.run_id}/cancel", {"by": "cli:carol"})
    assert status == 200 and cancelled == {"run_id": other.run_id, "status": "cancelled"}
    assert (await get(h, f"/api/v1/runs/{other.run_id}"))["status"] == "cancelled"


async def test_a_client_that_goes_away_does_not_stop_the_run(
    make_harness: MakeHarness, k8s: Cluster, aiohttp_server: AiohttpServer
) -> None:
    """The terminal closes while the rollback waits for Prometheus: the run goes on and is audited."""
    h, prometheus = await waiting_harness(make_harness, k8s, aiohttp_server)
    body = {"runbook": "rollback-and-check", "params": TARGET, "execute": True}
    resp = await h.client.post("/api/v1/runs", json=body, headers=STREAM)
    seen: list[tuple[int, str]] = []
    while not seen or seen[-1] != (1, "started"):
        event = json.loads(await resp.content.readline())
        seen.append((event["index"], event["state"]))
    resp.close()  # the client is gone mid-run
    (running,) = await get(h, "/api/v1/runs?limit=1")
    assert running["status"] == "running"

    prometheus.values = [0.0]

    async def finished() -> bool:
        record = await get(h, f"/api/v1/runs/{running['id']}")
        return bool(record["status"] == "succeeded")

    await wait_until(finished, what="the run finished without its client")
    assert k8s[0].weights(*KEY) == [[("stable", 100), ("canary", 0)]]


async def test_the_api_and_the_cli_count_as_one_approver(make_harness: MakeHarness, k8s: Cluster) -> None:
    """Names given through the API are the client's own: whoever holds the token could approve a
    high-risk run twice under two names. So API and CLI approvals count as one approver together;
    the second must come from a Slack approver (signed by Slack)."""
    fake, factory = k8s
    approvers = {"slack": {"runbook_approvers": ["UAPPROVER"]}}
    h = await make_harness(approvers, secret_values={"api_token": TOKEN}, kube=factory)
    approvals = h.state.services.approvals if h.state.services else None
    assert approvals is not None
    runbook, params = approvals.prepare("canary-promote", {**TARGET, "canary_weight": "50", "stable_weight": "50"})
    assert runbook.risk == "high"
    proposal = await approvals.propose(Actor.slack("UREQ"), runbook, params)

    _, first = await post(h, f"/api/v1/runs/{proposal.run_id}/approve", {"by": "cli:mallory"})
    assert (first["verdict"], first["approvers"], first["needed"]) == ("need_more", ["cli:mallory"], 2)
    _, second = await post(h, f"/api/v1/runs/{proposal.run_id}/approve", {"by": "cli:mallory-again"})
    assert second["verdict"] == "operator_counted"
    assert fake.weights(*KEY) == [[("stable", 90), ("canary", 10)]]  # nothing applied

    outcome = await approvals.approve(Actor.slack("UAPPROVER"), proposal.run_id)
    assert outcome.verdict.value == "approved" and outcome.approvers == ["cli:mallory", "slack:UAPPROVER"]


@pytest.mark.parametrize("name", ["UBOSS1234", "W0ADMIN99", "SLACK:UX", "Alert:3", "cli:a\nb"])
async def test_an_api_name_cannot_pose_as_slack_or_an_alert(make_harness: MakeHarness, k8s: Cluster, name: str) -> None:
    h = await harness(make_harness, k8s)
    for path, body in (
        ("/api/v1/runs", {"runbook": "emergency-rollback", "params": TARGET, "requested_by": name}),
        ("/api/v1/runs/1/approve", {"by": name}),
    ):
        status, answer = await post(h, path, body)
        assert status == 400 and "not a Slack ID" in answer["error"]["message"], (path, answer)


async def test_runs_through_the_api_are_bounded(
    make_harness: MakeHarness, k8s: Cluster, aiohttp_server: AiohttpServer
) -> None:
    """A burst of requests cannot start unbounded runs: past the limit, 429 and nothing starts."""
    h, prometheus = await waiting_harness(make_harness, k8s, aiohttp_server)
    h.state.operator_runs = OperatorRuns(limit=1)
    body = {"runbook": "rollback-and-check", "params": TARGET, "execute": True}
    first = await h.client.post("/api/v1/runs", json=body, headers=STREAM)
    assert json.loads(await first.content.readline())["state"] == "started"
    status, answer = await post(h, "/api/v1/runs", {"runbook": "rollback-and-check", "params": TARGET})
    assert status == 429 and "try again when one ends" in answer["error"]["message"]
    prometheus.values = [0.0]
    lines = [json.loads(line) for line in (await first.text()).splitlines()]
    assert lines[-1]["status"] == "succeeded"
    assert (await post(h, "/api/v1/runs", {"runbook": "rollback-and-check", "params": TARGET}))[0] == 200
