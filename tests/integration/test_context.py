"""A page carries the incident-response checklist: the dashboard, the failing traces and the mesh
graph of the alerting service, in PagerDuty's event and on the Slack message, from the real notifiers."""

from __future__ import annotations

import urllib.parse
from typing import Any

from tests.conftest import MakeHarness, Peers
from tests.helpers import payload_bytes, wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"
CONTEXT: dict[str, Any] = {
    "grafana": {"url": "https://grafana.example.com", "dashboard": "istio-service"},
    "jaeger": {"url": "https://jaeger.example.com", "service": "{{ service }}.{{ namespace }}"},
    "kiali": {"url": "https://kiali.example.com"},
    "links": [{"text": "Logs", "url": "https://logs.example.com/?app={{ labels.service }}"}],
}


async def test_pagerduty_and_slack_link_the_stack_for_the_alerting_service(
    make_harness: MakeHarness, peers: Peers
) -> None:
    h = await make_harness({**peers.config, "context": CONTEXT}, secret_values=peers.secret_values)
    await h.post_payload(payload_bytes(FIRING))
    await wait_until(lambda: bool(peers.pagerduty.triggers() and peers.slack.roots()), what="the page")

    pd_links = {link["text"]: link["href"] for link in peers.pagerduty.triggers()[0]["links"]}
    assert pd_links["Grafana"].startswith(
        "https://grafana.example.com/d/istio-service?var-service=nutrition-service&var-namespace=ai-nutritionist&from="
    )
    jaeger = urllib.parse.parse_qs(urllib.parse.urlsplit(pd_links["Failing traces (Jaeger)"]).query)
    assert jaeger["service"] == ["nutrition-service.ai-nutritionist"] and jaeger["tags"] == ['{"error":"true"}']
    assert pd_links["Mesh graph (Kiali)"].startswith("https://kiali.example.com/console/graph/namespaces/?namespaces=")
    assert pd_links["Logs"] == "https://logs.example.com/?app=nutrition-service"

    (buttons,) = [b["elements"] for b in peers.slack.roots()[0].blocks if b.get("block_id") == "links"]
    slack_links = {b["text"]["text"]: b["url"] for b in buttons}
    assert set(pd_links) <= set(slack_links)
    assert slack_links["Mesh graph (Kiali)"] == pd_links["Mesh graph (Kiali)"]
