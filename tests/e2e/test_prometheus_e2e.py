"""End to end with a real Prometheus (Debian's 2.42): a test exporter's error ratio crosses the
platform's real HighErrorRate rule → Prometheus → a real Alertmanager → alertbot pages Slack and
PagerDuty → the graph of the rule's own query (from Prometheus's query_range) follows the page into
its Slack thread and PagerDuty links it → the automated rollback's verification step polls the same
Prometheus until the error ratio has recovered."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PD_KEY, SLACK_TOKEN
from tests.e2e.procs import AlertbotProcess, AlertmanagerProcess, alertmanager_binary, free_port, http, poll
from tests.e2e.prometheus import MeshExporter, PrometheusProcess, prometheus_binary
from tests.e2e.threaded import ThreadedServer
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.helpers import TEST_RUNBOOKS

pytestmark = pytest.mark.e2e
TOKEN = "e2e-api-token"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The rule's expression (tests/data/prometheus/mesh-rules.yaml) without its comparison: what is drawn.
DRAWN = (
    "sum by (destination_service_name, destination_service_namespace) "
    '(rate(istio_requests_total{response_code=~"5.."}[10s])) '
    "/ sum by (destination_service_name, destination_service_namespace) (rate(istio_requests_total[10s]))"
)


def test_a_real_alert_rule_pages_with_its_graph_and_the_rollback_is_verified_against_prometheus(
    tmp_path: Path,
) -> None:
    alertmanager_binary()
    prometheus_binary()
    exporter = MeshExporter("nutrition-service", "ai-nutritionist", rps=200, error_ratio=0.0)
    k8s = FakeKubernetes()
    k8s.add_virtualservice(seed_canary())
    slack = FakeSlack(SLACK_TOKEN, ["#alerts-critical", "#alerts", "#alerts-info"])
    pagerduty = FakePagerDuty(PD_KEY)
    servers = [ThreadedServer(app) for app in (k8s.app, slack.app, pagerduty.app)]
    k8s_server, slack_server, pd_server = servers
    (tmp_path / "kubeconfig").write_text(kubeconfig(k8s_server.url("")))
    # Alertmanager needs alertbot's address, Prometheus Alertmanager's, alertbot Prometheus's: alertbot's
    # port is chosen first.
    alertbot_port = free_port()
    am = AlertmanagerProcess(tmp_path / "am", f"http://127.0.0.1:{alertbot_port}/webhook/alertmanager")
    prometheus = PrometheusProcess(tmp_path / "prom", [exporter.target], alertmanager=f"127.0.0.1:{am.port}")
    alertbot = AlertbotProcess(
        tmp_path / "ab",
        {
            "storage": {"url": f"sqlite:///{tmp_path}/ab/ab.db"},
            "server": {"external_url": "https://alertbot.example.com"},
            "prometheus": {"url": prometheus.url},
            "pagerduty": {"events_url": pd_server.url("/v2/enqueue")},
            "slack": {"api_url": slack_server.url("/api/")},
            "outbox": {"poll_interval": "200ms"},
            "kubernetes": {"kubeconfig": str(tmp_path / "kubeconfig")},
            "runbooks": {"dir": str(TEST_RUNBOOKS)},
            "automations": [
                {
                    "name": "rollback-canary",
                    "match": {"alertname": "HighErrorRate", "severity": "critical"},
                    "runbook": "rollback-and-verify",
                    "mode": "auto",
                    "params": {
                        "namespace": "{{ labels.namespace }}",
                        "virtualservice": "{{ labels.service }}-canary",
                        "service": "{{ labels.service }}",
                    },
                    "targets": ["ai-nutritionist/*"],
                }
            ],
        },
        env={
            "ALERTBOT_PAGERDUTY_ROUTING_KEY": PD_KEY,
            "ALERTBOT_SLACK_BOT_TOKEN": SLACK_TOKEN,
            "ALERTBOT_API_TOKEN": TOKEN,
        },
        port=alertbot_port,
    )
    try:
        alertbot.start()
        exporter.set(error_ratio=0.2)  # the canary starts failing one request in five
        poll(lambda: pagerduty.triggers() and slack.roots(), within=60, what="the page from the real rule")
        (page,) = slack.roots()
        paged_at = time.monotonic()

        # The graph follows into the page's thread, drawn from Prometheus's query_range of the rule's query.
        reply = poll(lambda: next((m for m in slack.replies(page.ts) if m.files), None), within=20, what="the graph")
        graph_after = time.monotonic() - paged_at
        (uploaded,) = reply.files
        assert uploaded.content is not None and uploaded.content.startswith(PNG_MAGIC)
        (tmp_path / "graph.png").write_bytes(uploaded.content)  # to look at when this test fails
        assert uploaded.alt_txt.startswith(DRAWN + " from ")
        # Within seconds, the worker's start and matplotlib's first font cache included.
        assert graph_after < 15, f"the graph came {graph_after:.1f}s after the page"

        # PagerDuty links the same graph; a browser opens it with the link's signature alone.
        (trigger,) = pagerduty.triggers()
        links = {link["text"]: link["href"] for link in trigger["links"]}
        assert urllib.parse.parse_qs(urllib.parse.urlsplit(links["Source (Prometheus)"]).query)["g0.expr"] == [
            DRAWN + " > 0.05"
        ]
        graph = urllib.parse.urlsplit(links["Graph"])
        assert graph.netloc == "alertbot.example.com"
        with urllib.request.urlopen(f"{alertbot.url}{graph.path}?{graph.query}", timeout=10) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
            assert resp.read().startswith(PNG_MAGIC)

        # The automated rollback applies at once, then verifies against Prometheus: the run stays
        # running while the ratio is high, and succeeds once the exporter recovers.
        rolled_back = [[("stable", 100), ("canary", 0)]]
        poll(
            lambda: k8s.weights("ai-nutritionist", "nutrition-service-canary") == rolled_back,
            within=30,
            what="rollback",
        )
        (run,) = _runs(alertbot.url)
        assert run["status"] == "running", run
        exporter.set(error_ratio=0.0)
        done = poll(
            lambda: next((r for r in _runs(alertbot.url) if r["status"] != "running"), None),
            within=45,
            what="the verification to see the recovery",
        )
        assert done["status"] == "succeeded", done
    finally:
        alertbot.close()
        prometheus.close()
        am.close()
        exporter.close()
        for server in servers:
            server.close()


def _runs(base: str) -> list[dict[str, object]]:
    status, body = http("GET", f"{base}/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    runs: list[dict[str, object]] = body
    return runs
