"""Shadow mode: everything decided and recorded, nothing sent or changed."""

from __future__ import annotations

from tests.conftest import Harness, MakeHarness, Peers
from tests.helpers import wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"
ROLLBACK = {
    "name": "rollback-canary",
    "match": {"severity": "critical", "canary": "true"},
    "runbook": "emergency-rollback",
    "mode": "auto",
    "params": {"namespace": "{{ labels.namespace }}", "virtualservice": "{{ labels.virtualservice }}"},
}


async def decisions(h: Harness) -> list[str]:
    return [d["summary"] for d in await (await h.client.get("/api/v1/decisions")).json()]


async def test_global_shadow_records_and_sends_nothing(make_harness: MakeHarness, peers: Peers) -> None:
    """mode: shadow → no PagerDuty event, no Slack message, no runbook run; the decisions say what would."""
    h = await make_harness(
        {**peers.config, "mode": "shadow", "automations": [ROLLBACK]}, secret_values=peers.secret_values
    )
    await h.post_file(FIRING)
    await h.post_file("am-higherrorrate-nutrition-service-resolved.json")
    await h.dispatcher.deliver_due("pagerduty")
    await h.dispatcher.deliver_due("slack")
    assert peers.pagerduty.events == [] and peers.slack.messages == {}
    assert sorted(await decisions(h)) == sorted(
        [
            "would notify pagerduty (HighErrorRate nutrition-service)",
            "would notify slack:#alerts-critical (HighErrorRate nutrition-service)",
            "would start emergency-rollback (rollback-canary) with {'namespace': 'ai-nutritionist', "
            "'virtualservice': 'nutrition-service-canary'}",
            "would resolve on pagerduty (HighErrorRate nutrition-service)",
            "would resolve on slack:#alerts-critical (HighErrorRate nutrition-service)",
        ]
    )
    runs = await h.state.store.read(lambda conn: conn.exec_driver_sql("SELECT count(*) FROM runbook_runs").scalar())
    assert runs == 0


async def test_a_shadow_route_beside_a_live_one(make_harness: MakeHarness, peers: Peers) -> None:
    """A new route for the mesh team in shadow: its Slack channel is only recorded; PagerDuty pages as before."""
    routes = {
        "receivers": ["slack"],
        "routes": [
            {
                "name": "mesh-trial",
                "matchers": ['namespace="ai-nutritionist"'],
                "receivers": ["slack:#mesh-oncall"],
                "mode": "shadow",
                "continue": True,
            },
            {"name": "critical", "matchers": ['severity="critical"'], "receivers": ["pagerduty"]},
        ],
    }
    h = await make_harness({**peers.config, "routes": routes}, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1, what="the live page")
    assert await decisions(h) == ["would notify slack:#mesh-oncall (HighErrorRate nutrition-service)"]


async def test_shadow_automation_only(make_harness: MakeHarness) -> None:
    h = await make_harness({"automations": [{**ROLLBACK, "mode": "shadow"}]})
    await h.post_file(FIRING)
    assert [d for d in await decisions(h) if d.startswith("would start emergency-rollback")]
