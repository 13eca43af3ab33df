"""POST /webhook/pagerduty: PagerDuty v3 webhooks signed as PagerDuty signs them
(tests/fakes/pagerduty_webhooks.py) keep alertbot, Slack and escalation in step, without loops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Harness, MakeHarness, Peers
from tests.fakes.pagerduty_webhooks import incident_event, note_event, signed
from tests.helpers import wait_until
from tests.slack_client import SECRET, command

FIRING = "am-higherrorrate-nutrition-service-firing.json"
PD_SECRET = "whsec-0123456789abcdef"
OLD_SECRET = "whsec-retiring-fedcba9876543210"


async def paged(make_harness: MakeHarness, peers: Peers, **config: Any) -> tuple[Harness, str]:
    """alertbot with PagerDuty, Slack and the webhook secret; a critical alert paged. Returns the
    harness and the PagerDuty dedup key (PagerDuty's incident_key for the incident)."""
    h = await make_harness(
        {**peers.config, **config},
        secret_values={**peers.secret_values, "pagerduty_webhook_secret": PD_SECRET, "slack_signing_secret": SECRET},
    )
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1 and len(peers.slack.roots()) == 1, what="the page")
    return h, peers.pagerduty.triggers()[0]["dedup_key"]


async def deliver(h: Harness, event: dict[str, Any], *secrets: str) -> Any:
    body, headers = signed(event, *(secrets or (PD_SECRET,)))
    return await h.client.post("/webhook/pagerduty", data=body, headers=headers)


async def test_an_ack_in_pagerduty_shows_in_slack_stops_escalation_and_is_not_sent_back(
    make_harness: MakeHarness, peers: Peers
) -> None:
    oncall = {"escalations": [{"name": "critical", "steps": [{"notify": "user:U0CCC", "after": "30s"}]}]}
    routes = {
        "receivers": ["slack"],
        "routes": [
            {"matchers": ['severity="critical"'], "receivers": ["pagerduty", "slack"], "escalation": "critical"}
        ],
    }
    h, key = await paged(make_harness, peers, oncall=oncall, routes=routes)
    resp = await deliver(h, incident_event("incident.acknowledged", key, status="acknowledged"))
    assert resp.status == 200 and await resp.json() == {"status": "applied", "incident_id": 1}
    (page,) = peers.slack.roots()
    await wait_until(
        lambda: [m.text for m in peers.slack.replies(page.ts)] == ["Acknowledged by Tenex Engineer in PagerDuty."],
        what="the ack in the page's thread",
    )
    incident = await (await h.client.get("/api/v1/incidents/1")).json()
    assert incident["acked_by"] == "pagerduty:Tenex Engineer"
    (step,) = [n for n in incident["notifications"] if n["channel"] == "escalation"]
    assert (step["status"], step["last_error"]) == ("cancelled", "acknowledged by pagerduty:Tenex Engineer")
    await h.dispatcher.deliver_due("pagerduty")
    assert [e["event_action"] for e in peers.pagerduty.events] == ["trigger"]  # nothing echoed back


async def test_a_resolve_in_pagerduty_resolves_the_incident_and_slack_follows(
    make_harness: MakeHarness, peers: Peers
) -> None:
    h, key = await paged(make_harness, peers)
    assert (await deliver(h, incident_event("incident.resolved", key, status="resolved"))).status == 200
    incident = await (await h.client.get("/api/v1/incidents/1")).json()
    assert incident["status"] == "resolved"
    (page,) = peers.slack.roots()
    await wait_until(
        lambda: (
            [m.text for m in peers.slack.replies(page.ts)][:1]
            == ["Resolved by Tenex Engineer in PagerDuty. " + page.text]
        ),
        what="the resolve in the page's thread",
    )
    await h.dispatcher.deliver_due("pagerduty")
    assert [e["event_action"] for e in peers.pagerduty.events] == ["trigger"]


async def test_an_ack_from_slack_echoed_by_pagerduty_changes_nothing(make_harness: MakeHarness, peers: Peers) -> None:
    """Slack ack → PagerDuty acknowledge (as before); PagerDuty's webhook for it is recognised."""
    h, key = await paged(make_harness, peers)
    await command(h, "ack 1", user="UALICE")
    await wait_until(
        lambda: [e["event_action"] for e in peers.pagerduty.events] == ["trigger", "acknowledge"], what="ack"
    )
    (page,) = peers.slack.roots()
    await wait_until(lambda: len(peers.slack.replies(page.ts)) == 1, what="the ack in Slack")
    slack_calls = len(peers.slack.calls)
    echo = incident_event("incident.acknowledged", key, status="acknowledged", who="alertbot integration")
    assert await (await deliver(h, echo)).json() == {"status": "unchanged", "incident_id": 1}
    await h.dispatcher.deliver_due("slack")
    await h.dispatcher.deliver_due("pagerduty")
    assert len(peers.slack.calls) == slack_calls
    assert [e["event_action"] for e in peers.pagerduty.events] == ["trigger", "acknowledge"]
    incident = await (await h.client.get("/api/v1/incidents/1")).json()
    assert incident["acked_by"] == "slack:UALICE"


async def test_reassignments_and_notes_join_the_timeline(make_harness: MakeHarness, peers: Peers) -> None:
    h, key = await paged(make_harness, peers)
    await deliver(h, incident_event("incident.reassigned", key, status="triggered", assignees=("Maeve",)))
    resp = await deliver(h, note_event("rolled back the canary by hand"))  # names only PagerDuty's incident id
    assert await resp.json() == {"status": "applied", "incident_id": 1}
    timeline = await (await h.client.get("/api/v1/incidents/1/timeline")).json()
    texts = [entry.get("text", "") for entry in timeline]
    assert "reassigned in PagerDuty to Maeve (by Tenex Engineer)" in texts
    assert "PagerDuty note by Tenex Engineer: rolled back the canary by hand" in texts


async def test_unsigned_wrongly_signed_stale_and_replayed_events_are_refused(
    make_harness: MakeHarness, peers: Peers
) -> None:
    h, key = await paged(make_harness, peers)
    ack = incident_event("incident.acknowledged", key, status="acknowledged")
    body, _ = signed(ack, PD_SECRET)
    assert (await h.client.post("/webhook/pagerduty", data=body)).status == 401
    assert (await deliver(h, ack, "not-the-secret")).status == 401
    stale = incident_event(
        "incident.acknowledged", key, status="acknowledged", occurred_at=datetime.now(UTC) - timedelta(hours=2)
    )
    resp = await deliver(h, stale)
    assert resp.status == 400 and "webhook_max_age" in (await resp.json())["error"]["message"]
    assert (await (await h.client.get("/api/v1/incidents/1")).json())["acked_by"] is None
    # During PagerDuty's secret rotation it signs with both; either one of ours is enough.
    assert (await deliver(h, ack, OLD_SECRET, PD_SECRET)).status == 200
    assert await (await deliver(h, ack)).json() == {"status": "duplicate", "incident_id": 1}
    other = incident_event("incident.acknowledged", "someone-elses-key", status="acknowledged")
    assert await (await deliver(h, other)).json() == {"status": "unmatched", "incident_id": None}


async def test_without_a_secret_the_endpoint_is_closed(make_harness: MakeHarness, peers: Peers) -> None:
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    body, headers = signed(incident_event("incident.resolved", "alertbot/x/1", status="resolved"), PD_SECRET)
    resp = await h.client.post("/webhook/pagerduty", data=body, headers=headers)
    assert resp.status == 401
    assert "ALERTBOT_PAGERDUTY_WEBHOOK_SECRET" in (await resp.json())["error"]["message"]


async def test_odd_signatures_are_a_401_and_long_names_are_cut_not_refused(
    make_harness: MakeHarness, peers: Peers
) -> None:
    h, key = await paged(make_harness, peers)
    body, _ = signed(incident_event("incident.acknowledged", key, status="acknowledged"), PD_SECRET)
    for header in ("v1=\u00e9\u00e9", "v1=" + "g" * 64, "v2=" + "0" * 64, ","):
        resp = await h.client.post(
            "/webhook/pagerduty", data=body, headers={"X-PagerDuty-Signature": header.encode().decode("latin-1")}
        )
        assert resp.status == 401, header
    long_name = "N" * 2000
    event = incident_event("incident.reassigned", key, status="triggered", assignees=tuple(["A" * 1500] * 60))
    event["event"]["agent"]["summary"] = long_name
    assert (await deliver(h, event)).status == 200
    timeline = await (await h.client.get("/api/v1/incidents/1/timeline")).json()
    (note,) = [e["text"] for e in timeline if e.get("text", "").startswith("reassigned in PagerDuty")]
    assert note.endswith("and 50 more (by " + "N" * 199 + "…)")
