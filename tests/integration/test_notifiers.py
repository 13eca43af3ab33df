"""PagerDuty and Slack delivery against local fake servers that validate requests and inject faults."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import Harness, MakeHarness, Peers
from tests.fakes.faults import Fault
from tests.helpers import payload_json, wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"
RESOLVED = "am-higherrorrate-nutrition-service-resolved.json"


async def rows(h: Harness, incident_id: int = 1) -> list[dict[str, Any]]:
    body = await (await h.client.get(f"/api/v1/incidents/{incident_id}")).json()
    out: list[dict[str, Any]] = body["notifications"]
    return out


async def settled_row(h: Harness, channel: str, incident_id: int = 1) -> dict[str, Any]:
    """The channel's outbox row once its outcome is recorded (delivered or failed)."""
    found: dict[str, Any] = {}

    async def settled() -> bool:
        for row in await rows(h, incident_id):
            if row["channel"] == channel and row["status"] != "pending":
                found.update(row)
                return True
        return False

    await wait_until(settled, within=10, what=f"{channel} outcome recorded")
    return found


async def test_critical_pages_pagerduty_and_posts_to_slack(make_harness: MakeHarness, peers: Peers) -> None:
    """A critical alert → one schema-valid PagerDuty trigger with the contract's fields, one Slack message."""
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    await h.post_file("prom-higherrorrate-firing.json")
    await wait_until(
        lambda: len(peers.pagerduty.triggers()) == 1 and len(peers.slack.roots()) == 1,
        what="PagerDuty trigger and Slack message",
    )
    event = peers.pagerduty.triggers()[0]
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "nutrition-service",
        "ai-nutritionist",
        "HighErrorRate",
    )
    assert payload["summary"].startswith("[CRITICAL] HighErrorRate nutrition-service: High 5xx error rate")
    assert payload["custom_details"]["labels"]["service"] == "nutrition-service"
    assert payload["custom_details"]["annotations"]["value"] == "0.07"
    assert "error_rate 7% > critical threshold 5%" in payload["custom_details"]["reason"]
    assert [link["href"] for link in event["links"]] == [
        "http://127.0.0.1:9090/graph?g0.expr=vector%280.07%29+%3E+0.05&g0.tab=1",
        "https://runbooks.example.com/alertbot/high-error-rate",
    ]
    message = peers.slack.roots()[0]
    assert message.channel == peers.slack.channel_ids["#alerts-critical"]
    assert message.text.startswith("[CRITICAL] HighErrorRate nutrition-service")
    assert message.blocks[0]["type"] == "header" and ":red_circle:" in message.blocks[0]["text"]["text"]
    assert h.console.lines() == []  # real channels enabled: the console stands in for nothing


async def test_resolve_uses_same_dedup_key_and_updates_slack_in_place(make_harness: MakeHarness, peers: Peers) -> None:
    """Resolve → PagerDuty resolve with the trigger's dedup_key; Slack: the same message updated + a thread reply."""
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await h.post_file(RESOLVED)
    await wait_until(
        lambda: len(peers.pagerduty.resolves()) == 1 and len(peers.slack.messages) == 2, what="resolve on both channels"
    )
    (trigger,), (resolve,) = peers.pagerduty.triggers(), peers.pagerduty.resolves()
    assert resolve["dedup_key"] == trigger["dedup_key"]
    assert "payload" not in resolve
    (root,) = peers.slack.roots()
    assert root.text.startswith("[RESOLVED]") and len(root.history) == 1
    assert ":white_check_mark:" in root.blocks[0]["text"]["text"]
    (reply,) = peers.slack.replies(root.ts)
    assert reply.text.startswith("Resolved.")


async def test_warning_goes_to_slack_only(make_harness: MakeHarness, peers: Peers) -> None:
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    await h.post_file("am-higherrorrate-ai-coach-firing.json")
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="Slack message")
    await h.dispatcher.deliver_due("pagerduty")
    assert peers.pagerduty.events == []
    assert peers.slack.roots()[0].channel == peers.slack.channel_ids["#alerts"]


async def test_refire_after_resolve_continues_the_slack_thread(make_harness: MakeHarness, peers: Peers) -> None:
    """The same alert firing again later: new PagerDuty incident, same Slack message and thread."""
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await h.post_file(RESOLVED)
    again = payload_json(FIRING)
    again["alerts"][0]["startsAt"] = "2026-11-29T21:30:00Z"
    await wait_until(
        lambda: len(peers.pagerduty.resolves()) == 1 and len(peers.slack.messages) == 2, what="first episode"
    )
    await h.post_payload(json.dumps(again))
    await wait_until(
        lambda: len(peers.pagerduty.triggers()) == 2 and len(peers.slack.messages) == 3, what="second trigger"
    )
    first, second = peers.pagerduty.triggers()
    assert first["dedup_key"] != second["dedup_key"]
    (root,) = peers.slack.roots()
    assert root.text.startswith("[CRITICAL]")  # back to firing
    assert [r.text.split(" ")[0] for r in peers.slack.replies(root.ts)] == ["Resolved.", "Firing"]


async def test_refire_waits_for_the_earlier_episodes_resolve_to_reach_slack(
    make_harness: MakeHarness, peers: Peers
) -> None:
    """Two episodes of one alert share a Slack message: a re-fire whose update would overtake the
    first episode's resolve (still being retried after a 500) waits for it, so the message ends up
    firing, not resolved."""
    config = {**peers.config, "outbox": {**peers.config["outbox"], "initial_backoff": "1s", "max_backoff": "1s"}}
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="first message")
    peers.slack.faults.push(Fault(status=500))
    await h.post_file(RESOLVED)

    async def resolve_retrying() -> bool:
        return any(
            r["channel"] == "slack" and r["event"] == "resolve" and r["attempts"] == 1 and r["status"] == "pending"
            for r in await rows(h)
        )

    await wait_until(resolve_retrying, what="the Slack resolve failed once")
    again = payload_json(FIRING)
    again["alerts"][0]["startsAt"] = "2026-11-29T21:30:00Z"
    await h.post_payload(json.dumps(again))
    (root,) = peers.slack.roots()
    await wait_until(lambda: len(peers.slack.replies(root.ts)) == 2, what="resolve and re-fire in the thread")
    assert [r.text.split(" ")[0] for r in peers.slack.replies(root.ts)] == ["Resolved.", "Firing"]
    states = [state["text"] for state in root.history] + [root.text]  # every version of the message
    assert [text.split(" ")[0] for text in states] == ["[CRITICAL]", "[RESOLVED]", "[CRITICAL]"]


async def test_duplicates_from_two_alertmanagers_page_once(make_harness: MakeHarness, peers: Peers) -> None:
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    await asyncio.gather(h.post_file(FIRING), h.post_file(FIRING.replace(".json", ".bearer.json")), h.post_file(FIRING))
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1 and len(peers.slack.roots()) == 1, what="page")
    await h.dispatcher.deliver_due("pagerduty")
    await h.dispatcher.deliver_due("slack")
    assert len(peers.pagerduty.events) == 1 and len(peers.slack.messages) == 1


async def test_pagerduty_429_honours_retry_after_and_slack_is_not_held_up(
    make_harness: MakeHarness, peers: Peers
) -> None:
    """429 with Retry-After: 1 → PagerDuty waits at least a second; Slack delivers meanwhile."""
    peers.pagerduty.faults.push(Fault(status=429, retry_after=1))
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="Slack message")
    slack_done = loop.time()
    assert peers.pagerduty.triggers() == []
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1, what="PagerDuty after Retry-After")
    assert slack_done - start < 0.9 <= loop.time() - start
    pd_row = await settled_row(h, "pagerduty")
    assert (pd_row["status"], pd_row["attempts"]) == ("delivered", 2)


async def test_pagerduty_5xx_drop_and_timeout_are_retried(make_harness: MakeHarness, peers: Peers) -> None:
    """500, a dropped connection and a response slower than send_timeout are each retried."""
    config = {**peers.config, "outbox": {**peers.config["outbox"], "send_timeout": "300ms"}}
    peers.pagerduty.faults.push(Fault(status=500), Fault(drop=True), Fault(delay=1.0))
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1, within=10, what="delivery after three faults")
    pd_row = await settled_row(h, "pagerduty")
    assert (pd_row["status"], pd_row["attempts"]) == ("delivered", 4)


async def test_pagerduty_400_fails_fast_with_reason(make_harness: MakeHarness, peers: Peers) -> None:
    """A rejected event (400) is not retried; the row records PagerDuty's reason."""
    config = {**peers.config, "pagerduty": {**peers.config["pagerduty"]}}
    h = await make_harness(
        config, secret_values={**peers.secret_values, "pagerduty_routing_key": "R0UT1NGKEYwrong000000000000000000"}
    )

    await h.post_file(FIRING)
    pd_row = await settled_row(h, "pagerduty")
    assert (pd_row["status"], pd_row["attempts"]) == ("failed", 1)
    assert "HTTP 400" in pd_row["last_error"] and "Invalid routing key" in pd_row["last_error"]
    assert "R0UT1NGKEYwrong" not in json.dumps(await rows(h))


async def test_slack_permanent_errors_fail_fast(make_harness: MakeHarness, peers: Peers) -> None:
    """channel_not_found and invalid_auth are recorded as failed after one attempt."""
    h = await make_harness(
        {**peers.config, "slack": {**peers.config["slack"], "channels": {"critical": "#nope"}}},
        secret_values=peers.secret_values,
    )

    await h.post_file(FIRING)
    row = await settled_row(h, "slack")
    assert (row["status"], row["attempts"]) == ("failed", 1) and "channel_not_found" in row["last_error"]


async def test_slack_bad_token_fails_fast(make_harness: MakeHarness, peers: Peers) -> None:
    h = await make_harness(peers.config, secret_values={**peers.secret_values, "slack_bot_token": "xoxb-wrong"})
    await h.post_file(FIRING)
    row = await settled_row(h, "slack")
    assert (row["status"], row["attempts"]) == ("failed", 1) and "invalid_auth" in row["last_error"]


async def test_slack_rate_limits_are_retried(make_harness: MakeHarness, peers: Peers) -> None:
    """HTTP 429 + Retry-After and ok:false ratelimited are both retried until delivered."""
    peers.slack.faults.push(
        Fault(status=429, retry_after=0), Fault(status=200, body={"ok": False, "error": "ratelimited"})
    )
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    slack_row = await settled_row(h, "slack")
    assert (slack_row["status"], slack_row["attempts"]) == ("delivered", 3)


async def test_long_summary_is_truncated_to_pagerduty_limit(make_harness: MakeHarness, peers: Peers) -> None:
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    data = payload_json(FIRING)
    data["alerts"][0]["annotations"]["summary"] = "s" * 5000
    await h.post_payload(json.dumps(data))
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1, what="trigger")
    assert len(peers.pagerduty.triggers()[0]["payload"]["summary"]) == 1024
    assert peers.pagerduty.rejected == []


async def test_per_route_routing_key(make_harness: MakeHarness, peers: Peers, monkeypatch: pytest.MonkeyPatch) -> None:
    """A route receiver pagerduty:payments pages with ALERTBOT_PAGERDUTY_ROUTING_KEY_PAYMENTS; the default
    key still serves plain `pagerduty`; a name without a key fails at once, saying which variable to set."""
    payments_key = "R0UT1NGKEYpayments00000000000001"
    peers.pagerduty.routing_keys.add(payments_key)
    routes = {
        "receivers": ["slack"],
        "routes": [
            {"matchers": ['service="nutrition-service"'], "receivers": ["pagerduty:payments"]},
            {"matchers": ['service="recipe-service"'], "receivers": ["pagerduty:search"]},
            {"matchers": ['severity="critical"'], "receivers": ["pagerduty"]},
        ],
    }
    h = await make_harness(
        {**peers.config, "routes": routes},
        secret_values=peers.secret_values,
        named_pagerduty_keys={"payments": payments_key},
    )
    await h.post_file(FIRING)
    await h.post_file("am-servicedown-recipe-service-firing.json")
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1, what="the payments page")
    assert peers.pagerduty.triggers()[0]["routing_key"] == payments_key
    row = await settled_row(h, "pagerduty", incident_id=2)
    assert row["status"] == "failed" and "set ALERTBOT_PAGERDUTY_ROUTING_KEY_SEARCH" in row["last_error"]
