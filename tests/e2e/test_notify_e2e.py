"""End to end: real Alertmanager → `alertbot serve` → fake PagerDuty and Slack (schema-checking servers)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import PD_KEY, SLACK_TOKEN
from tests.e2e.procs import AlertbotProcess, AlertmanagerProcess, alertmanager_binary, am_alert, poll
from tests.e2e.threaded import ThreadedServer
from tests.fakes.faults import Fault
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.e2e


@pytest.fixture
def fakes() -> Iterator[tuple[FakePagerDuty, FakeSlack, ThreadedServer, ThreadedServer]]:
    pagerduty = FakePagerDuty(PD_KEY)
    slack = FakeSlack(SLACK_TOKEN, ["#alerts-critical", "#alerts", "#alerts-info"])
    pd_server, slack_server = ThreadedServer(pagerduty.app), ThreadedServer(slack.app)
    yield pagerduty, slack, pd_server, slack_server
    pd_server.close()
    slack_server.close()


def test_alertmanager_pages_pagerduty_and_slack_and_resolves(
    tmp_path: Path, fakes: tuple[FakePagerDuty, FakeSlack, ThreadedServer, ThreadedServer]
) -> None:
    """A critical canary alert through a real Alertmanager: PagerDuty trigger (after one 500), Slack message;
    its resolve: PagerDuty resolve with the same dedup key, the Slack message updated in place."""
    alertmanager_binary()
    pagerduty, slack, pd_server, slack_server = fakes
    pagerduty.faults.push(Fault(status=500))
    config = {
        "storage": {"url": f"sqlite:///{tmp_path}/ab/ab.db"},
        "pagerduty": {"events_url": pd_server.url("/v2/enqueue")},
        "slack": {"api_url": slack_server.url("/api/")},
        "outbox": {"initial_backoff": "100ms", "poll_interval": "200ms"},
    }
    alertbot = AlertbotProcess(
        tmp_path / "ab", config, env={"ALERTBOT_PAGERDUTY_ROUTING_KEY": PD_KEY, "ALERTBOT_SLACK_BOT_TOKEN": SLACK_TOKEN}
    ).start()
    am = AlertmanagerProcess(tmp_path / "am", f"{alertbot.url}/webhook/alertmanager")
    try:
        start = datetime.now(UTC) - timedelta(seconds=5)
        alert = am_alert(
            {
                "alertname": "HighErrorRate",
                "service": "nutrition-service",
                "namespace": "ai-nutritionist",
                "severity": "critical",
                "canary": "true",
                "virtualservice": "nutrition-service-canary",
            },
            {
                "summary": "High 5xx error rate on nutrition-service",
                "value": "0.072",
                "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate",
            },
            starts_at=start,
        )
        am.post([alert])
        poll(lambda: pagerduty.triggers() and slack.roots(), within=30, what="trigger on both channels")
        (trigger,) = pagerduty.triggers()
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["custom_details"]["labels"]["virtualservice"] == "nutrition-service-canary"
        (message,) = slack.roots()
        assert message.channel == slack.channel_ids["#alerts-critical"]

        am.post([{**alert, "endsAt": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}])
        # The message is edited first, then the thread reply follows: wait for both.
        poll(
            lambda: pagerduty.resolves() and message.text.startswith("[RESOLVED]") and slack.replies(message.ts),
            within=30,
            what="resolve on both channels and the thread reply",
        )
        assert pagerduty.resolves()[0]["dedup_key"] == trigger["dedup_key"]
        assert len(slack.roots()) == 1 and len(slack.replies(message.ts)) == 1
        assert alertbot.notifications() == []  # nothing fell back to the console
        assert pagerduty.rejected == []
    finally:
        am.close()
        alertbot.close()
