"""A PagerDuty outage loses nothing, duplicates nothing, reorders nothing — and Slack is not held up.

The outage lasts 15 s by default: with the backoff capped at 3 s that is several rounds of retries
for every row, which is what the test is about; ``OUTAGE_SECONDS=60`` runs the minute-long version."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import MakeHarness, Peers
from tests.fakes.faults import Fault
from tests.helpers import payload_json, wait_until

OUTAGE_SECONDS = float(__import__("os").environ.get("OUTAGE_SECONDS", "15"))
ARRIVALS = OUTAGE_SECONDS / 3  # alerts keep coming through the outage's first third


def alert(i: int, status: str = "firing") -> str:
    data = payload_json("am-servicedown-recipe-service-firing.json")
    item = data["alerts"][0]
    item["labels"]["service"] = f"svc-{i:02d}"
    item["fingerprint"] = ""
    item["status"] = data["status"] = status
    if status == "resolved":
        item["endsAt"] = "2026-11-29T20:00:00Z"
    data["groupKey"] = f'{{}}:{{alertname="ServiceDown", service="svc-{i:02d}"}}'
    return json.dumps(data)


async def test_a_pagerduty_outage_loses_duplicates_and_reorders_nothing(
    make_harness: MakeHarness, peers: Peers
) -> None:
    """PagerDuty answers 503 (and drops or stalls connections) for the outage while 20 alerts fire and 8 resolve.
    Slack gets every message during the outage; afterwards PagerDuty gets exactly 20 triggers and 8
    resolves, each resolve after its own trigger."""
    config = {
        **peers.config,
        "outbox": {"initial_backoff": "100ms", "max_backoff": "3s", "poll_interval": "200ms", "send_timeout": "1s"},
    }
    h = await make_harness(config, secret_values=peers.secret_values)
    loop = asyncio.get_running_loop()
    peers.pagerduty.faults.down = True
    outage_ends = loop.time() + OUTAGE_SECONDS

    for i in range(20):  # the outage's first third: alerts keep coming, paced as they would arrive
        assert (await h.post_payload(alert(i))).status == 200
        if i < 8:
            assert (await h.post_payload(alert(i, "resolved"))).status == 200
        await asyncio.sleep(ARRIVALS / 20)

    await wait_until(
        lambda: (
            len(peers.slack.roots()) == 20 and sum(len(peers.slack.replies(m.ts)) for m in peers.slack.roots()) == 8
        ),
        within=10,
        what="Slack to be complete during the PagerDuty outage",
    )
    assert loop.time() < outage_ends and peers.pagerduty.events == []
    metrics = await (await h.client.get("/metrics")).text()
    assert "alertbot_outbox_pending 28.0" in metrics

    await asyncio.sleep(max(outage_ends - loop.time(), 0))  # the rest of the outage
    peers.pagerduty.faults.down = False
    peers.pagerduty.faults.push(Fault(drop=True), Fault(delay=2.0))  # a rough recovery

    await wait_until(lambda: len(peers.pagerduty.events) == 28, within=30, what="PagerDuty to catch up")
    await h.dispatcher.deliver_due("pagerduty")
    events = peers.pagerduty.events
    assert len(events) == 28
    triggers = [e["dedup_key"] for e in events if e["event_action"] == "trigger"]
    resolves = [e["dedup_key"] for e in events if e["event_action"] == "resolve"]
    assert len(set(triggers)) == len(triggers) == 20
    assert len(set(resolves)) == len(resolves) == 8
    for key in resolves:
        assert triggers.index(key) < len(triggers) and events.index(
            next(e for e in events if e["dedup_key"] == key and e["event_action"] == "trigger")
        ) < events.index(next(e for e in events if e["dedup_key"] == key and e["event_action"] == "resolve"))
