"""Storm control: past the threshold, one summary per group replaces per-alert messages and pages."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.conftest import MakeHarness, Peers
from tests.helpers import payload_json, wait_until

GROUP = "am-highlatencyp95-grocery-3alerts-firing.json"


def group_payload(count: int, *, status: str = "firing") -> str:
    """Alertmanager re-sends the whole group each time: pods 0..count-1, all firing (or all resolved)."""
    base = payload_json(GROUP)
    template = base["alerts"][0]
    alerts = []
    for i in range(count):
        alert = copy.deepcopy(template)
        alert["labels"]["pod"] = f"grocery-{i:03d}"
        alert["annotations"]["value"] = "6"                    # critical: PagerDuty and Slack
        alert["annotations"]["summary"] = f"High p95 latency on grocery-{i:03d}"
        alert["fingerprint"] = ""
        alert["status"] = status
        if status == "resolved":
            alert["endsAt"] = "2026-11-29T20:30:00Z"
        alerts.append(alert)
    base["alerts"], base["status"] = alerts, status
    return json.dumps(base)


async def test_storm_collapses_a_group_into_one_summary(make_harness: MakeHarness, peers: Peers) -> None:
    """25 alerts of one group with threshold 10: the first 10 notify one by one; the other 15 become one
    Slack message (updated in place) and one PagerDuty incident; when all resolve, the summary resolves."""
    config = {**peers.config, "storm": {"threshold": 10, "window": "5m"}}
    h = await make_harness(config, secret_values=peers.secret_values)
    for count in (5, 15, 25):
        assert (await h.post_payload(group_payload(count))).status == 200

    def storm_events() -> list[dict[str, Any]]:
        return [e for e in peers.pagerduty.triggers() if e["dedup_key"].startswith("alertbot/group/")]

    def summaries() -> list[Any]:
        return [m for m in peers.slack.roots() if m.text.startswith("[STORM")]

    def settled() -> bool:
        events = storm_events()
        return bool(events) and events[-1]["payload"]["custom_details"]["storm"]["count"] == 15 and \
            len(peers.slack.roots()) == 11 and len(summaries()) == 1 and "15 alerts" in summaries()[0].text

    await wait_until(settled, what="ten pages and one storm summary with all 15")
    individual = [e for e in peers.pagerduty.triggers() if e not in storm_events()]
    assert len(individual) == 10
    assert len({e["dedup_key"] for e in storm_events()}) == 1  # one PagerDuty incident for the group
    assert storm_events()[-1]["payload"]["summary"].startswith("[STORM] 15 alerts in group alertname=HighLatencyP95")
    incidents: list[dict[str, Any]] = await (await h.client.get("/api/v1/incidents?limit=100")).json()
    collapsed = [i for i in incidents if (i["suppressed_by"] or "").startswith("storm ")]
    assert len(incidents) == 25 and len(collapsed) == 15

    await h.post_payload(group_payload(25, status="resolved"))

    def all_resolved() -> bool:
        group_resolves = [e for e in peers.pagerduty.resolves() if e["dedup_key"].startswith("alertbot/group/")]
        return len(peers.pagerduty.resolves()) == 11 and len(group_resolves) == 1 and "ended" in summaries()[0].text

    await wait_until(all_resolved, what="ten resolves and the storm summary resolved")


async def test_below_threshold_every_alert_is_notified(make_harness: MakeHarness, peers: Peers) -> None:
    config = {**peers.config, "storm": {"threshold": 10, "window": "5m"}}
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_payload(group_payload(10))
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 10 and len(peers.slack.roots()) == 10,
                     what="ten individual pages")
    assert not any(e["dedup_key"].startswith("alertbot/group/") for e in peers.pagerduty.events)


async def test_storm_control_can_be_turned_off(make_harness: MakeHarness) -> None:
    h = await make_harness({"storm": None})
    await h.post_payload(group_payload(15))
    await wait_until(lambda: len(h.console.lines()) == 15, what="fifteen console lines")
