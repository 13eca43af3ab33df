"""End to end: a real Alertmanager 0.25 delivers to a real `alertbot serve` process."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import AlertbotProcess, AlertmanagerProcess, alertmanager_binary, am_alert, http, poll
from tests.helpers import payload_json

pytestmark = pytest.mark.e2e
TOKEN = "e2e-webhook-token"
NS = "ai-nutritionist"


@pytest.fixture
def alertbot(tmp_path: Path) -> Iterator[AlertbotProcess]:
    proc = AlertbotProcess(
        tmp_path / "alertbot",
        {"storage": {"url": f"sqlite:///{tmp_path}/alertbot/ab.db"}},
        env={"ALERTBOT_WEBHOOK_TOKEN": TOKEN},
    )
    try:
        yield proc.start()
    finally:
        proc.close()


@pytest.fixture
def managers(tmp_path: Path) -> Iterator[list[AlertmanagerProcess]]:
    alertmanager_binary()
    started: list[AlertmanagerProcess] = []
    yield started
    for am in started:
        am.close()


def by_alertname(notifications: list[dict[str, Any]], event: str) -> dict[str, dict[str, Any]]:
    return {n["alertname"]: n for n in notifications if n["event"] == event}


def test_alertmanager_fires_and_resolves_through_alertbot(
    alertbot: AlertbotProcess, tmp_path: Path, managers: list[AlertmanagerProcess]
) -> None:
    """Alerts posted to Alertmanager reach alertbot with bearer auth, are classified by the seed's
    thresholds (overriding a wrong label), notified once each, and resolved in place."""
    am = AlertmanagerProcess(tmp_path / "am", f"{alertbot.url}/webhook/alertmanager", token=TOKEN)
    managers.append(am)
    start = datetime.now(UTC) - timedelta(seconds=5)
    error_rate = am_alert(
        {
            "alertname": "HighErrorRate",
            "service": "nutrition-service",
            "namespace": NS,
            "severity": "warning",
            "canary": "true",
        },
        {"summary": "High 5xx error rate", "value": "7.2%"},
        starts_at=start,
    )
    down = am_alert({"alertname": "ServiceDown", "service": "recipe-service", "namespace": NS}, starts_at=start)
    rollout = am_alert(
        {"alertname": "DeploymentRolledOut", "service": "grocery", "namespace": NS, "severity": "info"}, starts_at=start
    )
    am.post([error_rate, down, rollout])

    def three_triggers() -> dict[str, dict[str, Any]] | None:
        found = by_alertname(alertbot.notifications(), "trigger")
        return found if len(found) == 3 else None

    triggers = poll(three_triggers, within=30, what="three triggers")
    assert triggers["HighErrorRate"]["severity"] == "critical"
    assert "overrides label severity=warning" in triggers["HighErrorRate"]["reason"]
    assert triggers["ServiceDown"]["severity"] == "critical"
    assert triggers["DeploymentRolledOut"]["severity"] == "info"

    am.post([{**error_rate, "endsAt": (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")}])
    resolved = poll(
        lambda: by_alertname(alertbot.notifications(), "resolve").get("HighErrorRate"), within=30, what="the resolve"
    )
    assert resolved["incident_id"] == triggers["HighErrorRate"]["incident_id"]
    assert resolved["ends_at"] is not None

    status, incidents = http("GET", f"{alertbot.url}/api/v1/incidents?status=resolved")
    assert status == 200 and [i["alertname"] for i in incidents] == ["HighErrorRate"]
    events = [(n["alertname"], n["event"]) for n in alertbot.notifications()]
    assert sorted(events) == sorted(
        [
            ("HighErrorRate", "trigger"),
            ("ServiceDown", "trigger"),
            ("DeploymentRolledOut", "trigger"),
            ("HighErrorRate", "resolve"),
        ]
    )
    assert alertbot.stop() == 0
    assert '"event": "stopped"' in alertbot.stderr()


def test_ha_alertmanager_pair_pages_once(
    alertbot: AlertbotProcess, tmp_path: Path, managers: list[AlertmanagerProcess]
) -> None:
    """Two Alertmanagers both deliver the same alert; alertbot notifies it exactly once."""
    for name in ("am1", "am2"):
        managers.append(AlertmanagerProcess(tmp_path / name, f"{alertbot.url}/webhook/alertmanager", token=TOKEN))
    alert = am_alert(
        {"alertname": "HighLatencyP95", "service": "meal-planner", "namespace": NS},
        {"value": "6300ms"},
        starts_at=datetime.now(UTC) - timedelta(seconds=3),
    )
    for am in managers:
        am.post([alert])

    def both_delivered() -> bool:
        status, body = http("GET", f"{alertbot.url}/metrics")
        return status == 200 and "alertbot_alerts_received_total 2.0" in body

    poll(both_delivered, within=30, what="both Alertmanagers to deliver")
    poll(alertbot.notifications, within=10, what="the notification")
    assert [(n["alertname"], n["severity"]) for n in alertbot.notifications()] == [("HighLatencyP95", "critical")]


def test_wrong_token_is_refused_and_nothing_is_stored(alertbot: AlertbotProcess) -> None:
    """A sender without the webhook token gets 401 and leaves no trace."""
    status, body = http(
        "POST",
        f"{alertbot.url}/webhook/alertmanager",
        payload_json("am-higherrorrate-nutrition-service-firing.json"),
        headers={"Authorization": "Bearer nope"},
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert http("GET", f"{alertbot.url}/api/v1/incidents")[1] == []


def test_kill_9_after_200_loses_nothing(alertbot: AlertbotProcess) -> None:
    """Every alert answered 200 is in the store after kill -9 and restart, and every one is notified."""

    def post(i: int) -> tuple[int, str]:
        data = payload_json("am-highload-nutrition-service-firing.json")
        data["alerts"][0]["labels"]["pod"] = f"pod-{i}"
        data["alerts"][0]["labels"]["service"] = f"svc-{i}"
        data["alerts"][0]["fingerprint"] = f"{i:016x}"
        data["groupKey"] = f'{{}}:{{alertname="HighLoad", service="svc-{i}"}}'  # one group each: no storm
        status, _ = http(
            "POST", f"{alertbot.url}/webhook/alertmanager", data, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        return status, data["alerts"][0]["fingerprint"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(80)))
    alertbot.stop(signal.SIGKILL)
    accepted = {fp for status, fp in results if status == 200}
    assert len(accepted) == 80

    alertbot.start()
    status, incidents = http("GET", f"{alertbot.url}/api/v1/incidents?limit=1000")
    assert status == 200
    assert {i["fingerprint"] for i in incidents} == accepted
    poll(
        lambda: {n["fingerprint"] for n in alertbot.notifications()} == accepted,
        within=30,
        what="every accepted alert to be notified",
    )
