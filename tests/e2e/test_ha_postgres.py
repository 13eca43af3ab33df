"""Two alertbot replicas on one PostgreSQL, behind an HA Alertmanager pair: real processes throughout.

Each Alertmanager of the pair delivers every notification, one to each replica (as a Service would
spread them): each incident must still page PagerDuty once and post one Slack message, and runbook
locks must hold across the replicas.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PD_KEY, SLACK_TOKEN
from tests.e2e.procs import AlertbotProcess, AlertmanagerProcess, alertmanager_binary, am_alert, poll
from tests.e2e.threaded import ThreadedServer
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.postgres import PostgresServer

pytestmark = pytest.mark.e2e
NS = "ai-nutritionist"


@pytest.fixture
def peers() -> Iterator[tuple[FakePagerDuty, FakeSlack, ThreadedServer, ThreadedServer]]:
    pagerduty = FakePagerDuty(PD_KEY)
    pagerduty.latency = 0.05
    slack = FakeSlack(SLACK_TOKEN, ["#alerts-critical", "#alerts", "#alerts-info"])
    pd_server, slack_server = ThreadedServer(pagerduty.app), ThreadedServer(slack.app)
    yield pagerduty, slack, pd_server, slack_server
    pd_server.close()
    slack_server.close()


def error_rate_alert(service: str, starts: datetime, ends: datetime | None = None) -> dict[str, Any]:
    return am_alert(
        {"alertname": "HighErrorRate", "service": service, "namespace": NS, "severity": "critical"},
        {"summary": f"High 5xx error rate on {service}", "value": "0.072"},
        starts_at=starts,
        ends_at=ends,
    )


def test_two_replicas_behind_an_ha_pair_page_once(
    tmp_path: Path,
    postgres_server: PostgresServer,
    peers: tuple[FakePagerDuty, FakeSlack, ThreadedServer, ThreadedServer],
) -> None:
    """12 critical alerts, each delivered twice (AM1 → replica A, AM2 → replica B): 12 PagerDuty incidents
    triggered once each, 12 Slack messages, each escalation step of each taken once by one of the
    replicas; their resolves, once each, the messages updated in place."""
    alertmanager_binary()
    pagerduty, slack, pd_server, slack_server = peers
    config = {
        "storage": {"url": postgres_server.new_database()},
        "pagerduty": {"events_url": pd_server.url("/v2/enqueue")},
        "slack": {"api_url": slack_server.url("/api/")},
        "outbox": {"initial_backoff": "100ms", "poll_interval": "200ms"},
        "storm": None,
        "oncall": {
            "escalations": [
                {"name": "page", "steps": [{"notify": "user:U0BBB"}, {"notify": "user:U0CCC", "after": "1s"}]}
            ]
        },
        "routes": {
            "receivers": ["slack"],
            "routes": [
                {"matchers": ['severity="critical"'], "receivers": ["pagerduty", "slack"], "escalation": "page"}
            ],
        },
    }
    env = {"ALERTBOT_PAGERDUTY_ROUTING_KEY": PD_KEY, "ALERTBOT_SLACK_BOT_TOKEN": SLACK_TOKEN}
    replicas = [AlertbotProcess(tmp_path / name, config, env=env) for name in ("a", "b")]
    managers: list[AlertmanagerProcess] = []
    try:
        for replica in replicas:
            replica.start()
        managers += [
            AlertmanagerProcess(tmp_path / f"am-{i}", f"{r.url}/webhook/alertmanager") for i, r in enumerate(replicas)
        ]
        starts = datetime.now(UTC) - timedelta(seconds=5)
        services = [f"svc-{i:02d}" for i in range(12)]
        for am in managers:
            am.post([error_rate_alert(s, starts) for s in services])
        poll(
            lambda: len(pagerduty.incidents()) == 12 and len(channel_messages(slack)) == 12,
            within=60,
            what="12 pages and 12 Slack messages",
        )
        poll(
            lambda: all(_metric(r, "alertbot_alerts_received_total") >= 12 for r in replicas),
            within=30,
            what="each Alertmanager to deliver every alert to its replica",
        )
        assert sorted(pagerduty.incidents().values()) == [1] * 12, pagerduty.incidents()
        assert len({m.text for m in channel_messages(slack)}) == 12
        poll(
            lambda: len(slack.direct_messages("U0BBB")) == 12 and len(slack.direct_messages("U0CCC")) == 12,
            within=60,
            what="both escalation steps of every incident",
        )
        for user in ("U0BBB", "U0CCC"):  # one message per incident and step, whichever replica took it
            told = sorted(
                next(s for s in services if f"{s} " in m.text or m.text.endswith(s))
                for m in slack.direct_messages(user)
            )
            assert told == services, told

        ends = datetime.now(UTC) - timedelta(seconds=1)
        for am in managers:
            am.post([error_rate_alert(s, starts, ends) for s in services])
        poll(
            lambda: (
                len(pagerduty.resolves()) >= 12
                and all(m.text.startswith("[RESOLVED]") for m in channel_messages(slack))
            ),
            within=60,
            what="12 resolves",
        )
        assert sorted(e["dedup_key"] for e in pagerduty.resolves()) == sorted(pagerduty.incidents())
        assert len(channel_messages(slack)) == 12 and pagerduty.rejected == []
    finally:
        for am in managers:
            am.close()
        for replica in replicas:
            replica.close()


def channel_messages(slack: FakeSlack) -> list[Any]:
    """The pages posted in channels (not the escalation steps' direct messages)."""
    return [m for m in slack.roots() if m.channel.startswith("C")]


def _metric(replica: AlertbotProcess, name: str) -> float:
    with urllib.request.urlopen(f"{replica.url}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def test_runbook_locks_hold_across_replicas(tmp_path: Path, postgres_server: PostgresServer) -> None:
    """Two processes sharing the store execute the same slow runbook on one VirtualService at once: one
    runs, the other is rejected naming the run that holds the lock; the VirtualService changed once."""
    fake = FakeKubernetes()
    fake.add_virtualservice(seed_canary())
    server = ThreadedServer(fake.app)
    try:
        (tmp_path / "kubeconfig").write_text(kubeconfig(server.url("")))
        runbooks = tmp_path / "runbooks"
        runbooks.mkdir()
        (runbooks / "slow-rollback.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": "slow-rollback",
                    "params": [{"name": "namespace"}, {"name": "virtualservice"}],
                    "steps": [
                        {"type": "wait", "duration": "30s"},  # outlasts a loaded CLI start
                        {
                            "type": "istio.rollback",
                            "namespace": "{{ params.namespace }}",
                            "virtualservice": "{{ params.virtualservice }}",
                        },
                    ],
                }
            )
        )
        (tmp_path / "alertbot.yaml").write_text(
            yaml.safe_dump({"storage": {"url": postgres_server.new_database()}, "runbooks": {"dir": str(runbooks)}})
        )
        env = {
            "KUBECONFIG": str(tmp_path / "kubeconfig"),
            "ALERTBOT_CONFIG": str(tmp_path / "alertbot.yaml"),
            "USER": "alice",
            "PATH": "/usr/bin:/bin",
        }
        command = [
            sys.executable,
            "-m",
            "alertbot",
            "runbook",
            "run",
            "slow-rollback",
            "-p",
            f"namespace={NS}",
            "-p",
            "virtualservice=nutrition-service-canary",
            "--execute",
        ]
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def first_running() -> bool:
            history = subprocess.run(
                [sys.executable, "-m", "alertbot", "runbook", "history", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout
            return any(json.loads(line)["status"] == "running" for line in history.splitlines())

        poll(first_running, within=30, what="the first run to hold its lock (waiting before its patch)")
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert "succeeded" in out
        assert (
            second.returncode == 1
            and "rejected" in second.stdout
            and f"another run holds virtualservice {NS}/nutrition-service-canary" in second.stdout
        )
        assert len([p for p in fake.patches if not p["dry_run"]]) == 1
    finally:
        server.close()
