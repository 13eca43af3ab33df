"""Silences, inhibition, the incidents API, health, metrics — and that no secret ever leaks."""

from __future__ import annotations

import json
from typing import Any

import pytest
import structlog

from alertbot.observability import configure_logging, redactor
from tests.conftest import MakeHarness, Peers
from tests.fakes.faults import Fault
from tests.helpers import payload_json, wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"


async def test_silenced_alert_is_stored_not_notified_and_notified_once_silence_ends(make_harness: MakeHarness) -> None:
    """A matching silence mutes the page (the incident says by what); expired, the next delivery pages."""
    h = await make_harness()
    resp = await h.client.post(
        "/api/v1/silences",
        json={
            "matchers": ['service="nutrition-service"', 'severity="critical"'],
            "duration": "2h",
            "created_by": "alice",
            "comment": "planned failover",
        },
    )
    assert resp.status == 201
    silence = await resp.json()
    assert silence["matchers"] == ['service="nutrition-service"', 'severity="critical"']

    await h.post_file(FIRING)
    incident = (await (await h.client.get("/api/v1/incidents")).json())[0]
    assert incident["suppressed_by"].startswith(f"silence {silence['id']} by alice")
    await h.dispatcher.deliver_due("console")
    assert h.console.lines() == []

    assert (await h.client.delete(f"/api/v1/silences/{silence['id']}")).status == 200
    await h.post_file(FIRING)  # Alertmanager re-sends firing alerts at each group interval
    await wait_until(lambda: len(h.console.lines()) == 1, what="notification after the silence ended")
    assert (await (await h.client.get("/api/v1/incidents")).json())[0]["suppressed_by"] is None


async def test_silence_on_other_labels_does_not_apply(make_harness: MakeHarness) -> None:
    h = await make_harness()
    await h.client.post("/api/v1/silences", json={"matchers": ['service="grocery"'], "duration": "1h"})
    await h.post_file(FIRING)
    await wait_until(lambda: len(h.console.lines()) == 1, what="notification")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"matchers": [], "duration": "1h"}, "matchers: List should have at least 1 item"),
        ({"matchers": ['a=~"("'], "duration": "1h"}, "matchers[0]: invalid regular expression"),
        ({"matchers": ["a=b"]}, "give exactly one of duration"),
        ({"matchers": ["a=b"], "duration": "soon"}, "invalid duration"),
        ({"matchers": ["a=b"], "duration": "1h", "colour": "red"}, "colour: unknown key"),
        ({"matchers": ["a=b"], "ends_at": "2020-01-01T00:00:00Z"}, "would end before it starts"),
    ],
)
async def test_bad_silences_are_400(make_harness: MakeHarness, body: dict[str, Any], message: str) -> None:
    h = await make_harness()
    resp = await h.client.post("/api/v1/silences", json=body)
    assert resp.status == 400
    assert message in (await resp.json())["error"]["message"]


async def test_expiring_unknown_silence_is_404(make_harness: MakeHarness) -> None:
    h = await make_harness()
    assert (await h.client.delete("/api/v1/silences/99")).status == 404
    assert (await h.client.delete("/api/v1/silences/abc")).status == 404


async def test_critical_inhibits_later_warning_for_same_service(make_harness: MakeHarness) -> None:
    """ServiceDown (critical) firing for recipe-service mutes a later latency warning for it."""
    h = await make_harness()
    await h.post_file("am-servicedown-recipe-service-firing.json")
    warning = payload_json("am-highlatencyp95-user-profile-firing.json")
    warning["alerts"][0]["labels"]["service"] = "recipe-service"
    warning["alerts"][0]["fingerprint"] = ""
    await h.post_payload(json.dumps(warning))
    await wait_until(lambda: len(h.console.lines()) == 1, what="the critical page")
    await h.dispatcher.deliver_due("console")
    assert [x["alertname"] for x in h.console.lines()] == ["ServiceDown"]
    metrics = await (await h.client.get("/metrics")).text()
    assert 'alertbot_alerts_suppressed_total{reason="inhibited"} 1.0' in metrics


async def test_incidents_api_filters_and_validates(make_harness: MakeHarness) -> None:
    h = await make_harness()
    await h.post_file(FIRING)
    await h.post_file("am-higherrorrate-nutrition-service-resolved.json")
    await h.post_file("am-servicedown-recipe-service-firing.json")
    firing = await (await h.client.get("/api/v1/incidents?status=firing")).json()
    resolved = await (await h.client.get("/api/v1/incidents?status=resolved")).json()
    everything = await (await h.client.get("/api/v1/incidents")).json()
    assert [i["alertname"] for i in firing] == ["ServiceDown"]
    assert [i["alertname"] for i in resolved] == ["HighErrorRate"]
    assert len(everything) == 2
    bad = await h.client.get("/api/v1/incidents?status=open")
    assert (
        bad.status == 400 and "status: must be firing, resolved or rejected" in (await bad.json())["error"]["message"]
    )
    assert (await h.client.get("/api/v1/incidents/12345")).status == 404
    for beyond in ("2147483648", "99999999999999999999", "-1", "0"):  # not an id the database could hold
        assert (await h.client.get(f"/api/v1/incidents/{beyond}")).status == 404
        assert (await h.client.get(f"/api/v1/incidents/{beyond}/timeline")).status == 404


async def test_api_token_guards_the_api(make_harness: MakeHarness) -> None:
    """With ALERTBOT_API_TOKEN set, /api/v1/* needs it; health and metrics stay open."""
    h = await make_harness(secret_values={"api_token": "api-s3cret"})
    assert (await h.client.get("/api/v1/incidents")).status == 401
    assert (await h.client.post("/api/v1/silences", json={"matchers": ["a=b"], "duration": "1h"})).status == 401
    ok = await h.client.get("/api/v1/incidents", headers={"Authorization": "Bearer api-s3cret"})
    assert ok.status == 200
    assert (await h.client.get("/healthz")).status == 200
    assert (await h.client.get("/metrics")).status == 200


async def test_health_and_readiness(make_harness: MakeHarness) -> None:
    h = await make_harness()
    assert await (await h.client.get("/healthz")).json() == {"status": "ok"}
    assert await (await h.client.get("/readyz")).json() == {"status": "ok"}


async def test_metrics_expose_the_contract_series(make_harness: MakeHarness) -> None:
    """/metrics has every series the contract names, with values that follow what happened."""
    h = await make_harness()
    await h.post_file(FIRING)
    await h.post_file("am-higherrorrate-ai-coach-firing.json")
    await wait_until(lambda: len(h.console.lines()) == 2, what="two notifications")

    async def recorded() -> bool:
        body = await (await h.client.get("/metrics")).text()
        return 'alertbot_notifications_total{channel="console",outcome="delivered"} 2.0' in body

    await wait_until(recorded, what="both deliveries recorded")
    text = await (await h.client.get("/metrics")).text()
    for series in (
        "alertbot_alerts_received_total 2.0",
        'alertbot_alerts_classified_total{severity="critical"} 1.0',
        'alertbot_alerts_classified_total{severity="warning"} 1.0',
        'alertbot_notifications_total{channel="console",outcome="delivered"} 2.0',
        'alertbot_notification_latency_seconds_count{channel="console"} 2.0',
        "alertbot_outbox_pending 0.0",
        "# TYPE alertbot_runbook_runs_total counter",
    ):
        assert series in text, series


async def test_unknown_route_and_method_are_json(make_harness: MakeHarness) -> None:
    h = await make_harness()
    resp = await h.client.get("/nope")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await h.client.get("/webhook/alertmanager")
    assert resp.status == 405 and "error" in await resp.json()


async def test_no_secret_leaks_into_logs_errors_or_metrics(
    make_harness: MakeHarness, peers: Peers, capsys: pytest.CaptureFixture[str]
) -> None:
    """With every secret set, wrong tokens sent and a channel failing, no secret value appears in any output."""
    values = {
        **peers.secret_values,
        "webhook_token": "wh-7f3a9c-secret",
        "api_token": "api-2b8e1d-secret",
        "slack_signing_secret": "sig-9d8c7b-secret",
    }
    configure_logging("debug", json_logs=True)
    redactor.set_values(values.values())
    peers.pagerduty.faults.push(Fault(status=400, body={"message": f"bad key {values['pagerduty_routing_key']}"}))
    h = await make_harness(peers.config, secret_values=values)
    outputs = []
    for token in ("wh-7f3a9c-secret-wrong", "api-2b8e1d-secret"):
        resp = await h.post_file(FIRING, token=token)
        outputs.append(await resp.text())
    resp = await h.post_file(FIRING, token=values["webhook_token"])
    assert resp.status == 200
    outputs.append(await (await h.client.get("/metrics")).text())
    outputs.append(
        await (
            await h.client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {values['api_token']}"})
        ).text()
    )
    await wait_until(
        lambda: (
            len(peers.slack.roots()) == 1
            and peers.pagerduty.rejected == []
            and len(next(iter(h.state.metrics.notifications.collect())).samples) >= 2
        ),
        what="both channels tried",
    )
    outputs.append(
        await (
            await h.client.get("/api/v1/incidents/1", headers={"Authorization": f"Bearer {values['api_token']}"})
        ).text()
    )
    structlog.get_logger("test").info(
        "leak check", token=values["slack_bot_token"], message=f"key is {values['pagerduty_routing_key']}"
    )
    captured = capsys.readouterr()
    everything = "\n".join([*outputs, captured.out, captured.err, h.console.getvalue()])
    assert "bad key [REDACTED]" in everything  # the peer echoed the key; it was scrubbed
    assert "leak check" in captured.err
    for secret in values.values():
        assert secret not in everything
    redactor.set_values([])
    structlog.reset_defaults()
