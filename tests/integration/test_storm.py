"""Storm control: past the threshold, one summary per group replaces per-alert messages and pages."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from alertbot.store import storms as storm_repo
from alertbot.store.migrations import migrate
from alertbot.store.schema import schema_migrations, storms
from tests.conftest import MakeHarness, Peers
from tests.fakes.slack import Message
from tests.helpers import payload_json, wait_until

GROUP = "am-highlatencyp95-grocery-3alerts-firing.json"
NOW = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)


def group_payload(count: int, *, status: str = "firing") -> str:
    """Alertmanager re-sends the whole group each time: pods 0..count-1, all firing (or all resolved)."""
    base = payload_json(GROUP)
    template = base["alerts"][0]
    alerts = []
    for i in range(count):
        alert = copy.deepcopy(template)
        alert["labels"]["pod"] = f"grocery-{i:03d}"
        alert["annotations"]["value"] = "6"  # critical: PagerDuty and Slack
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

    def summaries() -> list[Message]:
        return [m for m in peers.slack.roots() if m.text.startswith("[STORM")]

    def settled() -> bool:
        events = storm_events()
        return (
            bool(events)
            and events[-1]["payload"]["custom_details"]["storm"]["count"] == 15
            and len(peers.slack.roots()) == 11
            and len(summaries()) == 1
            and "15 alerts" in summaries()[0].text
        )

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
    await wait_until(
        lambda: len(peers.pagerduty.triggers()) == 10 and len(peers.slack.roots()) == 10, what="ten individual pages"
    )
    assert not any(e["dedup_key"].startswith("alertbot/group/") for e in peers.pagerduty.events)


async def test_storm_control_can_be_turned_off(make_harness: MakeHarness) -> None:
    h = await make_harness({"storm": None})
    await h.post_payload(group_payload(15))
    await wait_until(lambda: len(h.console.lines()) == 15, what="fifteen console lines")


async def test_a_group_has_one_open_storm_at_a_time(make_harness: MakeHarness) -> None:
    """Replicas starting a storm for one group at once: the store takes one; the other transaction
    fails (and its ingest is retried, joining the first). A finished storm does not block the next."""
    h = await make_harness()
    await h.post_payload(group_payload(1))  # an incident to anchor the storms on

    def start(conn: Connection) -> int:
        storm = storm_repo.start(conn, group_key="g", group_labels={}, anchor_incident_id=1, destinations=[], now=NOW)
        return storm.id

    first = await h.state.store.write(start)
    with pytest.raises(IntegrityError):
        await h.state.store.write(start)
    await h.state.store.write(storm_repo.finish, first, NOW)
    assert await h.state.store.write(start) != first


async def test_the_migration_ends_storms_that_replicas_opened_twice(make_harness: MakeHarness) -> None:
    """Before one open storm per group was enforced, racing replicas could open two: the upgrade keeps
    the first open and ends the later one, so that the rule can be enforced."""
    h = await make_harness()
    await h.post_payload(group_payload(1))

    def before_v12(conn: Connection) -> None:
        conn.exec_driver_sql("DROP INDEX ux_storms_open")
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 12))
        for _ in range(2):
            storm_repo.start(conn, group_key="g", group_labels={}, anchor_incident_id=1, destinations=[], now=NOW)

    def open_storms(conn: Connection) -> list[int]:
        return [row.id for row in conn.execute(sa.select(storms.c.id).where(storms.c.resolved_at.is_(None)))]

    await h.state.store.write(before_v12)
    assert len(await h.state.store.read(open_storms)) == 2
    assert await h.state.store.write(migrate, NOW) == [12]
    [kept] = await h.state.store.read(open_storms)
    assert kept == min(await h.state.store.read(lambda conn: [r.id for r in conn.execute(sa.select(storms.c.id))]))
