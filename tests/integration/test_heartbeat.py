"""The dead man's switch: Alertmanager's Watchdog must keep arriving; when it stops, alertbot pages."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from tests.conftest import Harness, MakeHarness
from tests.helpers import wait_until

WATCHDOG = {
    "version": "4",
    "status": "firing",
    "receiver": "alertbot",
    "groupKey": '{}:{alertname="Watchdog"}',
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "Watchdog", "severity": "none"},
            "annotations": {"summary": "always firing"},
            "startsAt": "2026-11-29T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "e9b4ab6f1f6a7bd2",
        }
    ],
}


async def harness(make_harness: MakeHarness) -> tuple[Harness, dict[str, datetime]]:
    clock = {"now": datetime(2026, 11, 29, 20, 0, tzinfo=UTC)}
    h = await make_harness({"heartbeat": {"alertname": "Watchdog", "max_interval": "5m"}}, clock=lambda: clock["now"])
    return h, clock


async def test_watchdog_is_recorded_not_notified(make_harness: MakeHarness) -> None:
    h, _clock = await harness(make_harness)
    assert (await h.post_payload(json.dumps(WATCHDOG))).status == 200
    await h.dispatcher.deliver_due("console")
    assert h.console.lines() == []
    assert await (await h.client.get("/api/v1/incidents")).json() == []


async def test_missing_watchdog_pages_once_and_resolves_when_it_returns(make_harness: MakeHarness) -> None:
    """Silent past max_interval → one critical "pipeline broken" page (not repeated); the next
    Watchdog resolves it."""
    h, clock = await harness(make_harness)
    await h.post_payload(json.dumps(WATCHDOG))
    clock["now"] += timedelta(minutes=4)
    assert await h.state.pipeline.check_heartbeat() is False
    clock["now"] += timedelta(minutes=2)
    assert await h.state.pipeline.check_heartbeat() is True
    assert await h.state.pipeline.check_heartbeat() is False  # already paged
    await wait_until(lambda: len(h.console.lines()) == 1, what="the page")
    page = h.console.lines()[0]
    assert (page["alertname"], page["severity"], page["event"]) == ("AlertingPipelineBroken", "critical", "trigger")
    assert page["summary"].startswith("No Watchdog from Alertmanager for 6m")
    assert page["stands_in_for"] == ["pagerduty", "slack:#alerts-critical"]

    await h.post_payload(json.dumps(WATCHDOG))
    await wait_until(lambda: len(h.console.lines()) == 2, what="the resolve")
    assert h.console.lines()[1]["event"] == "resolve"
    incident = (await (await h.client.get("/api/v1/incidents")).json())[0]
    assert incident["status"] == "resolved" and incident["resolved_by"] == "Watchdog arrived again"


async def test_a_fresh_alertbot_counts_from_its_start(make_harness: MakeHarness) -> None:
    """No Watchdog seen yet: the interval counts from the first check, not from the epoch."""
    h, clock = await harness(make_harness)
    assert await h.state.pipeline.check_heartbeat() is False
    clock["now"] += timedelta(minutes=6)
    assert await h.state.pipeline.check_heartbeat() is True


async def test_replicas_page_once_for_a_missing_watchdog(make_harness: MakeHarness) -> None:
    """Two replicas on one store both notice the Watchdog is overdue: one page between them."""
    clock = {"now": datetime(2026, 11, 29, 20, 0, tzinfo=UTC)}
    config = {"heartbeat": {"alertname": "Watchdog", "max_interval": "5m"}}
    replicas = [await make_harness(config, clock=lambda: clock["now"]) for _ in range(2)]
    await replicas[0].post_payload(json.dumps(WATCHDOG))
    clock["now"] += timedelta(minutes=6)
    paged = await asyncio.gather(*(h.state.pipeline.check_heartbeat() for h in replicas))
    assert sorted(paged) == [False, True]
    incidents = await (await replicas[0].client.get("/api/v1/incidents")).json()
    assert [i["alertname"] for i in incidents] == ["AlertingPipelineBroken"]
