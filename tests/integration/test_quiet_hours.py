"""Quiet hours on a route, on the real clock: a warning waits for the quiet to end, a critical never
does; the warning's message then goes out, and its escalation starts only then."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import MakeHarness, Peers
from tests.helpers import payload_json, wait_until

WARNING = "am-highload-nutrition-service-firing.json"  # HighLoad: a warning
CRITICAL = "am-higherrorrate-nutrition-service-firing.json"


def quiet_until(end: datetime) -> dict[str, str]:
    """Quiet from an hour ago until ``end`` (UTC wall clock, to the second)."""
    start = end - timedelta(hours=1)
    return {"start": start.strftime("%H:%M:%S"), "end": end.strftime("%H:%M:%S"), "timezone": "UTC"}


async def notifications(h: Any, incident_id: int) -> list[dict[str, Any]]:
    return list((await (await h.client.get(f"/api/v1/incidents/{incident_id}")).json())["notifications"])


async def test_a_warning_waits_for_the_quiet_hours_to_end_and_a_critical_does_not(
    make_harness: MakeHarness, peers: Peers
) -> None:
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    config = {
        **peers.config,
        "oncall": {"escalations": [{"name": "team", "steps": [{"notify": "user:U0CCC"}]}]},
        "routes": {"receivers": ["slack"], "escalation": "team", "quiet_hours": quiet_until(end)},
    }
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(WARNING)
    await h.post_file(CRITICAL)

    def pages(severity: str) -> list[Any]:
        return [m for m in peers.slack.roots() if m.text.startswith(f"[{severity}]")]

    await wait_until(lambda: len(pages("CRITICAL")) == 1, what="the critical page, at once")
    (held,) = [n for n in await notifications(h, 1) if n["channel"] == "slack"]
    assert held["status"] == "pending" and held["hold"].startswith("quiet hours until ")
    assert datetime.fromisoformat(held["held_until"]) == end
    (step,) = [n for n in await notifications(h, 1) if n["channel"] == "escalation"]
    assert datetime.fromisoformat(step["held_until"]) == end  # the escalation starts when the quiet ends
    # The critical's escalation did not wait: its first step has told U0CCC already.
    await wait_until(lambda: len(peers.slack.direct_messages("U0CCC")) >= 1, what="the critical's step")
    assert "CRITICAL" in peers.slack.direct_messages("U0CCC")[0].text

    await wait_until(lambda: len(pages("WARNING")) == 1, within=10, what="the warning, once the quiet is over")
    assert datetime.now(UTC) >= end


async def test_a_warning_that_resolves_during_quiet_hours_is_never_sent(
    make_harness: MakeHarness, peers: Peers
) -> None:
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    config = {**peers.config, "routes": {"receivers": ["slack", "pagerduty"], "quiet_hours": quiet_until(end)}}
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(WARNING)
    resolved = payload_json(WARNING)
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = datetime.now(UTC).isoformat()
    resolved["status"] = "resolved"
    await h.post_payload(json.dumps(resolved))
    sent = await notifications(h, 1)
    assert {(n["event"], n["channel"], n["status"]) for n in sent} == {
        ("trigger", "slack", "cancelled"),
        ("trigger", "pagerduty", "cancelled"),
    }
    assert {n["last_error"] for n in sent} == {"resolved during quiet hours"}
    history = (await (await h.client.get("/api/v1/incidents/1")).json())["history"]
    assert [n["text"] for n in history] == ["resolved during quiet hours: nothing was sent to pagerduty, slack"]
    assert peers.slack.roots() == [] and peers.pagerduty.events == []
