"""Webhooks committed together (group commit) see each other: what one payload of a batch inserted
counts for the next — inhibition sources, storm counts — as if each had its own transaction."""

from __future__ import annotations

import asyncio
import copy
import json

from alertbot.domain.parse import parse_webhook
from alertbot.ingest.ingest import IngestStats
from tests.conftest import Harness, MakeHarness
from tests.helpers import payload_json, wait_until

GROCERY = payload_json("am-highlatencyp95-grocery-3alerts-firing.json")


def one_alert_payload(pod: str, value: str, *, group: str = "") -> bytes:
    body = copy.deepcopy(GROCERY)
    alert = body["alerts"][0]
    alert["labels"]["pod"], alert["annotations"]["value"], alert["fingerprint"] = pod, value, ""
    body["alerts"] = [alert]
    if group:
        body["groupKey"] = group
    return json.dumps(body).encode()


async def accept_together(h: Harness, bodies: list[bytes]) -> list[IngestStats]:
    """Hand every payload to the pipeline before its writer runs: they share one transaction."""
    return list(await asyncio.gather(*(h.state.pipeline.accept(parse_webhook(b)) for b in bodies)))


async def test_a_critical_earlier_in_the_batch_inhibits_a_warning_later_in_it(make_harness: MakeHarness) -> None:
    h = await make_harness()
    stats = await accept_together(h, [one_alert_payload("p-critical", "5.2"), one_alert_payload("p-warning", "3.4")])
    assert [s.suppressed.get("inhibited", 0) for s in stats] == [0, 1]
    await wait_until(lambda: len(h.console.lines()) == 1, what="the critical's notification")
    incidents = {i["labels"]["pod"]: i for i in await (await h.client.get("/api/v1/incidents")).json()}
    assert incidents["p-warning"]["suppressed_by"].startswith("inhibited")
    assert incidents["p-critical"]["suppressed_by"] is None
    assert incidents["p-warning"]["created_at"] == incidents["p-critical"]["created_at"]  # one transaction


async def test_storm_counts_include_the_batchs_own_alerts(make_harness: MakeHarness) -> None:
    """Threshold 2: the third alert of the group, though in the same transaction as the first two,
    starts the storm; the fourth joins it."""
    h = await make_harness({"storm": {"threshold": 2, "window": "5m"}})
    bodies = [one_alert_payload(f"p{i}", "6", group="grocery-group") for i in range(4)]
    stats = await accept_together(h, bodies)
    assert [s.suppressed.get("storm", 0) for s in stats] == [0, 0, 1, 1]
    incidents = await (await h.client.get("/api/v1/incidents")).json()
    summarised = sorted(i["labels"]["pod"] for i in incidents if (i["suppressed_by"] or "").startswith("storm "))
    assert summarised == ["p2", "p3"]
    assert len({i["created_at"] for i in incidents}) == 1  # all four in one transaction


async def test_two_replicas_given_the_same_resolve_send_it_once(make_harness: MakeHarness) -> None:
    """Two alertbot apps on one store (replicas) each get the HA pair's copy of a resolve at the same
    moment: one of them resolves the incident and notifies; the other finds it resolved."""
    first, second = await make_harness(), await make_harness()
    assert (await first.post_file("am-higherrorrate-nutrition-service-firing.json")).status == 200
    await wait_until(lambda: len(first.console.lines()) == 1, what="the page")
    resolved = payload_json("am-higherrorrate-nutrition-service-resolved.json")
    answers = await asyncio.gather(first.post_payload(json.dumps(resolved)), second.post_payload(json.dumps(resolved)))
    assert [a.status for a in answers] == [200, 200]
    await wait_until(lambda: len(first.console.lines()) + len(second.console.lines()) == 2, what="the resolve")
    for h in (first, second):
        await h.dispatcher.deliver_due("console")
    events = [line["event"] for h in (first, second) for line in h.console.lines()]
    assert sorted(events) == ["resolve", "trigger"]


async def test_an_alert_that_fires_and_resolves_within_one_batch_is_paged_and_resolved(
    make_harness: MakeHarness,
) -> None:
    """The firing and the resolve of one alert share a transaction (two Alertmanagers, one late): the
    resolve goes wherever the trigger went."""
    h = await make_harness()
    firing = payload_json("am-higherrorrate-nutrition-service-firing.json")
    resolved = payload_json("am-higherrorrate-nutrition-service-resolved.json")
    await accept_together(h, [json.dumps(firing).encode(), json.dumps(resolved).encode()])
    await wait_until(lambda: len(h.console.lines()) == 2, what="trigger and resolve")
    assert [line["event"] for line in h.console.lines()] == ["trigger", "resolve"]
    [incident] = await (await h.client.get("/api/v1/incidents")).json()
    assert incident["status"] == "resolved" and [d["channel"] for d in incident["destinations"]] == ["console"]


async def test_a_critical_later_in_the_batch_does_not_inhibit_a_warning_that_arrived_before_it(
    make_harness: MakeHarness,
) -> None:
    """New alerts are inserted up front for the whole batch, but each counts only from its arrival:
    as with a transaction per payload, the warning was notified before the critical existed."""
    h = await make_harness()
    stats = await accept_together(h, [one_alert_payload("p-warning", "3.4"), one_alert_payload("p-critical", "5.2")])
    assert [s.suppressed.get("inhibited", 0) for s in stats] == [0, 0]
    await wait_until(lambda: len(h.console.lines()) == 2, what="both notifications")


async def test_copies_of_one_alert_in_one_batch_make_one_incident(make_harness: MakeHarness) -> None:
    """The HA pair's two copies of a notification, committed together: one incident, one page."""
    h = await make_harness()
    firing = payload_json("am-higherrorrate-nutrition-service-firing.json")
    stats = await accept_together(h, [json.dumps(firing).encode(), json.dumps(firing).encode()])
    assert [(s.alerts, s.duplicates, s.notifications) for s in stats] == [(1, 0, 1), (1, 1, 0)]
    await wait_until(lambda: len(h.console.lines()) == 1, what="the page")
    assert len(await (await h.client.get("/api/v1/incidents")).json()) == 1


async def test_a_refire_in_the_batch_that_held_the_resolve_cancels_it(make_harness: MakeHarness) -> None:
    """resolve_delay: the resolve held by one payload and the re-fire in the next share a transaction;
    the re-fire still finds the held resolve (written before it looks) and continues the incident."""
    h = await make_harness({"routes": {"receivers": ["console"], "resolve_delay": "5m"}})
    firing = payload_json("am-higherrorrate-nutrition-service-firing.json")
    assert (await h.post_payload(json.dumps(firing))).status == 200
    await wait_until(lambda: len(h.console.lines()) == 1, what="the page")
    resolved = payload_json("am-higherrorrate-nutrition-service-resolved.json")
    again = copy.deepcopy(firing)
    again["alerts"][0]["startsAt"] = "2026-11-29T21:30:00Z"
    stats = await accept_together(h, [json.dumps(resolved).encode(), json.dumps(again).encode()])
    assert [s.suppressed.get("continued", 0) for s in stats] == [0, 1]
    rows = (await (await h.client.get("/api/v1/incidents/1")).json())["notifications"]
    assert [(r["event"], r["status"]) for r in rows] == [("trigger", "delivered"), ("resolve", "cancelled")]
    await h.dispatcher.deliver_due("console")
    assert [line["event"] for line in h.console.lines()] == ["trigger"]
