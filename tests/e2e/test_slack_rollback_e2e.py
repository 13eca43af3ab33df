"""End to end: real Alertmanager fires a critical canary alert → Slack message with a Run-rollback
button → a signed Slack interaction → the fake Kubernetes API shows 100/0."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertbot.slack.verify import sign
from tests.conftest import SLACK_TOKEN
from tests.e2e.procs import AlertbotProcess, AlertmanagerProcess, alertmanager_binary, am_alert, poll
from tests.e2e.threaded import ThreadedServer
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.e2e
SECRET = "e2e-signing-secret"
ROOT = Path(__file__).resolve().parents[2]


def test_approve_rollback_from_the_alert_message(tmp_path: Path) -> None:
    alertmanager_binary()
    k8s, slack = FakeKubernetes(), FakeSlack(SLACK_TOKEN, ["#alerts-critical", "#alerts", "#alerts-info"])
    k8s.add_virtualservice(seed_canary())
    k8s_server, slack_server = ThreadedServer(k8s.app), ThreadedServer(slack.app)
    (tmp_path / "kubeconfig").write_text(kubeconfig(k8s_server.url("")))
    config = {
        "storage": {"url": f"sqlite:///{tmp_path}/ab/ab.db"},
        "slack": {"api_url": slack_server.url("/api/"), "runbook_approvers": ["UONCALL"]},
        "kubernetes": {"kubeconfig": str(tmp_path / "kubeconfig")},
        "runbooks": {"dir": str(ROOT / "runbooks")},
        "outbox": {"poll_interval": "200ms"},
        "automations": [
            {
                "name": "rollback-canary",
                "match": {"severity": "critical", "canary": "true"},
                "runbook": "emergency-rollback",
                "mode": "approve",
                "params": {"namespace": "{{ labels.namespace }}", "virtualservice": "{{ labels.virtualservice }}"},
                "targets": ["ai-nutritionist/*"],
            }
        ],
    }
    alertbot = AlertbotProcess(
        tmp_path / "ab", config, env={"ALERTBOT_SLACK_BOT_TOKEN": SLACK_TOKEN, "ALERTBOT_SLACK_SIGNING_SECRET": SECRET}
    ).start()
    am = AlertmanagerProcess(tmp_path / "am", f"{alertbot.url}/webhook/alertmanager")
    try:
        am.post(
            [
                am_alert(
                    {
                        "alertname": "HighErrorRate",
                        "service": "nutrition-service",
                        "namespace": "ai-nutritionist",
                        "canary": "true",
                        "virtualservice": "nutrition-service-canary",
                    },
                    {"summary": "High 5xx error rate on nutrition-service", "value": "0.072"},
                    starts_at=datetime.now(UTC) - timedelta(seconds=5),
                )
            ]
        )
        message = poll(lambda: slack.roots()[0] if slack.roots() else None, within=30, what="the Slack message")
        buttons = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
        run = next(b for b in buttons if b["text"]["text"] == "Run emergency-rollback")
        assert k8s.weights("ai-nutritionist", "nutrition-service-canary") == [[("stable", 90), ("canary", 10)]]

        def click(button: dict[str, Any], ts: str, block_id: str) -> dict[str, Any]:
            payload = {
                "type": "block_actions",
                "user": {"id": "UONCALL"},
                "trigger_id": uuid.uuid4().hex,
                "channel": {"id": message.channel},
                "message": {"ts": ts},
                "actions": [{"action_id": button["action_id"], "block_id": block_id, "value": button["value"]}],
            }
            body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
            stamp = str(int(time.time()))
            request = urllib.request.Request(
                f"{alertbot.url}/slack/interactions",
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": sign(SECRET, stamp, body),
                },
            )
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert resp.status == 200
                answer: dict[str, Any] = json.loads(resp.read())
                return answer

        # The alert's button shows the plan (target and weights) in the thread; approving that applies it.
        assert click(run, message.ts, "incident-1")["replace_original"] is False
        plan = poll(lambda: next(iter(slack.replies(message.ts)), None), within=30, what="the plan in the thread")
        assert "stable 90 → 100, canary 10 → 0" in json.dumps(plan.blocks, ensure_ascii=False)
        assert k8s.weights("ai-nutritionist", "nutrition-service-canary") == [[("stable", 90), ("canary", 10)]]
        approve = next(e for b in plan.blocks if b["type"] == "actions" for e in b["elements"])
        assert "approved by <@UONCALL>" in click(approve, plan.ts, f"run-{approve['value']}")["text"]
        poll(
            lambda: k8s.weights("ai-nutritionist", "nutrition-service-canary") == [[("stable", 100), ("canary", 0)]],
            within=30,
            what="the rollback applied",
        )
    finally:
        am.close()
        alertbot.close()
        k8s_server.close()
        slack_server.close()
