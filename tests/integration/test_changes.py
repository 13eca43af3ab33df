"""Change correlation: the page says what changed shortly before, offers to undo it, and the incident's
timeline puts alerts, notifications, changes, runbook runs and acks in order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pytest_aiohttp import AiohttpServer

from alertbot.runbooks.k8s import Kubernetes, api_client
from tests.conftest import Harness, MakeHarness, Peers
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.helpers import payload_bytes, wait_until
from tests.slack_client import SECRET, ResponseUrl, click, command

FIRING = "am-higherrorrate-nutrition-service-firing.json"
STARTS = datetime(2026, 11, 29, 19, 54, 53, 462000, tzinfo=UTC)  # the captured alert's startsAt
NS = "ai-nutritionist"
KEY = (NS, "nutrition-service-canary")


def event(minutes_before: float, **fields: Any) -> dict[str, Any]:
    body = {
        "kind": "deployment",
        "service": "nutrition-service",
        "namespace": NS,
        "version": "1.4.3",
        "actor": "deploy-bot",
        "description": "nutrition-service 1.4.3 rolled out",
        "timestamp": (STARTS - timedelta(minutes=minutes_before)).isoformat(),
    }
    return {**body, **fields}


async def test_a_page_says_what_changed_shortly_before(make_harness: MakeHarness, peers: Peers) -> None:
    """Changes to the same service and namespace within 30 minutes before the alert started, newest
    first, in the PagerDuty summary and details and in the Slack message with an undo button; older
    changes and other services' or namespaces' are left out."""
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    shift = event(
        3,
        kind="traffic_shift",
        description="nutrition-service 1.4.3 → 10 % canary",
        target="virtualservice/nutrition-service-canary",
    )
    for body in (
        event(10, actor="argocd"),
        shift,
        event(45, version="1.4.1"),
        event(2, service="grocery"),
        event(1, namespace="staging"),
        event(-1, version="1.4.4"),
    ):
        assert (await h.client.post("/api/v1/events", json=body)).status == 201
    await h.post_payload(payload_bytes(FIRING))
    await wait_until(lambda: bool(peers.pagerduty.triggers() and peers.slack.roots()), what="the page")

    payload = peers.pagerduty.triggers()[0]["payload"]
    shifted = "started 3 min after traffic shift: nutrition-service 1.4.3 → 10 % canary (by deploy-bot)"
    assert payload["summary"].endswith(" — " + shifted)
    assert payload["custom_details"]["recent_changes"] == [
        shifted,
        "started 10 min after deployment: nutrition-service 1.4.3 rolled out (by argocd)",
    ]
    blocks = peers.slack.roots()[0].blocks
    [what] = [b["text"]["text"] for b in blocks if b["type"] == "section" and "What changed" in b["text"]["text"]]
    assert what == (
        f"*What changed*\n• {shifted}\n"
        "• started 10 min after deployment: nutrition-service 1.4.3 rolled out (by argocd)"
    )
    [undo] = [
        b
        for block in blocks
        if block["type"] == "actions"
        for b in block["elements"]
        if b.get("action_id") == "change_undo"
    ]
    events = await (await h.client.get("/api/v1/events?service=nutrition-service")).json()
    shift_id = next(e["id"] for e in events if e["kind"] == "traffic_shift")
    assert (undo["text"]["text"], undo["value"]) == ("Restore last good traffic", str(shift_id))


async def test_warnings_and_critical_pages_only(make_harness: MakeHarness, peers: Peers) -> None:
    """Info alerts (deployment events themselves) carry no "what changed" of their own."""
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    await h.client.post("/api/v1/events", json=event(3))
    await h.post_payload(payload_bytes("am-deploymentrolledout-nutrition-service-firing.json"))
    await wait_until(lambda: bool(peers.slack.roots()), what="the info message")
    assert "What changed" not in json.dumps(peers.slack.roots()[0].blocks)


async def start_cluster(
    make_harness: MakeHarness, aiohttp_server: AiohttpServer, tmp_path: Path, peers: Peers, clock: dict[str, datetime]
) -> tuple[Harness, FakeKubernetes, ResponseUrl, str]:
    k8s = FakeKubernetes()
    k8s.add_virtualservice(seed_canary())
    k8s.add_deployment(NS, "nutrition-service", "registry.example.com/nutrition-service:1.4.2")
    server = await aiohttp_server(k8s.app)
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig(str(server.make_url(""))))
    responses = ResponseUrl()
    url = str((await aiohttp_server(responses.app)).make_url("/respond"))
    config = {
        **peers.config,
        "slack": {**peers.config["slack"], "runbook_approvers": ["UAPPROVER"]},
        "kubernetes": {"watch": {"namespaces": [NS], "settle": "5m", "initial_backoff": "20ms"}},
    }
    h = await make_harness(
        config,
        secret_values={**peers.secret_values, "slack_signing_secret": SECRET},
        kube=lambda: Kubernetes(api_client(path)),
        clock=lambda: clock["now"],
    )
    await wait_until(lambda: sum(r.startswith("watch ") for r in k8s.requests) == 2, what="the watch")
    return h, k8s, responses, url


async def test_a_bad_traffic_shift_is_undone_from_the_page(
    make_harness: MakeHarness, aiohttp_server: AiohttpServer, tmp_path: Path, peers: Peers
) -> None:
    """The watch sees 90/10 (healthy for 20 minutes) become 50/50; the error-rate page 5 minutes later
    names that shift and offers "Restore last good traffic"; the click plans 50/50 → 90/10, an approver
    approves, the VirtualService is back to 90/10; the rollback shows as a change, and the timeline has
    it all in order."""
    clock = {"now": STARTS - timedelta(minutes=25)}
    h, k8s, responses, url = await start_cluster(make_harness, aiohttp_server, tmp_path, peers, clock)
    clock["now"] = STARTS - timedelta(minutes=5)
    k8s.set_weights(*KEY, {"stable": 50, "canary": 50})
    await wait_until(lambda: _events(h, 1), what="the traffic shift")
    clock["now"] = STARTS + timedelta(seconds=30)
    await h.post_payload(payload_bytes(FIRING))
    await wait_until(lambda: bool(peers.slack.roots()), what="the page")
    summary = peers.slack.roots()[0].blocks
    text = json.dumps(summary, ensure_ascii=False)
    assert (
        "started 5 min after traffic shift nutrition-service: nutrition-service-canary weights canary 10 % → 50 %, "
        "stable 90 % → 50 % (by deploy-bot)"
    ) in text
    undo = next(
        b
        for block in summary
        if block["type"] == "actions"
        for b in block["elements"]
        if b.get("action_id") == "change_undo"
    )

    answer = await click(
        h, "change_undo", int(undo["value"]), user="UALICE", response_url=url, ts=int(clock["now"].timestamp())
    )
    assert answer["text"].startswith("Planning `restore-last-good`")
    await h.slack.idle()
    plan = json.dumps(responses.posts[-1], ensure_ascii=False)
    assert "http[0] (primary): stable 50 → 90, canary 50 → 10 (last good at" in plan
    run_id = int(responses.posts[-1]["blocks"][2]["elements"][0]["value"])
    await click(h, "runbook_approve", run_id, user="UAPPROVER", response_url=url, ts=int(clock["now"].timestamp()))
    await h.slack.idle()
    assert k8s.weights(*KEY) == [[("stable", 90), ("canary", 10)]]

    changes = await (await h.client.get("/api/v1/events")).json()
    assert [c["source"] for c in changes] == ["runbook", "kubernetes"]  # the watch skips alertbot's own write
    assert changes[0]["kind"] == "traffic_shift"
    assert changes[0]["description"].startswith(
        f"runbook restore-last-good (run {run_id}): virtualservice "
        f"{NS}/nutrition-service-canary http[0] (primary): stable 50 → 90"
    )
    assert changes[0]["actor"] == "slack:UALICE"

    timeline = await (await h.client.get("/api/v1/incidents/1/timeline")).json()
    kinds = [entry["kind"] for entry in timeline]
    assert kinds[:2] == ["change", "alert"]
    assert timeline[0]["text"].startswith(
        "traffic shift nutrition-service: nutrition-service-canary weights canary 10 % → 50 %"
    )
    assert any(e["kind"] == "notification" and e["text"] == "trigger to pagerduty delivered" for e in timeline)
    assert [e["kind"] for e in timeline if "restore-last-good" in e["text"]] == ["change"]
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)

    shown = await command(h, "timeline 1", response_url=url, ts=int(clock["now"].timestamp()))
    assert shown["text"].startswith("*Timeline of incident 1*")
    assert "*change* traffic shift nutrition-service: nutrition-service-canary weights" in shown["text"]


async def test_rollback_to_last_good_from_slack(
    make_harness: MakeHarness, aiohttp_server: AiohttpServer, tmp_path: Path, peers: Peers
) -> None:
    """`/alertbot rollback --to last-good ns/vs` plans the restore; without a proven record it says why."""
    clock = {"now": STARTS - timedelta(minutes=25)}
    h, k8s, responses, url = await start_cluster(make_harness, aiohttp_server, tmp_path, peers, clock)
    k8s.set_weights(*KEY, {"stable": 50, "canary": 50})  # 90/10 was seen only just now: not proven
    await wait_until(lambda: _events(h, 1), what="the traffic shift")
    await command(
        h,
        "rollback --to last-good ai-nutritionist/nutrition-service-canary",
        response_url=url,
        ts=int(clock["now"].timestamp()),
    )
    await h.slack.idle()
    assert "no last-known-good weights recorded" in responses.posts[-1]["text"]

    clock["now"] += timedelta(minutes=6)  # 50/50 has now stayed healthy for the settle time
    await command(
        h,
        "rollback --to last-good ai-nutritionist/nutrition-service-canary",
        response_url=url,
        ts=int(clock["now"].timestamp()),
    )
    await h.slack.idle()
    assert "already at the last good weights" in json.dumps(responses.posts[-1], ensure_ascii=False)


async def _events(h: Harness, n: int) -> bool:
    return len(await (await h.client.get("/api/v1/events")).json()) == n
