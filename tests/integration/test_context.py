"""A page carries the incident-response checklist: the dashboard, the failing traces and the mesh
graph of the alerting service, in PagerDuty's event and on the Slack message, from the real notifiers."""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

from pytest_aiohttp import AiohttpServer

from tests.conftest import Harness, MakeHarness, Peers
from tests.fakes.jaeger import FakeJaeger
from tests.helpers import payload_bytes, wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"
STARTS = datetime(2026, 11, 29, 19, 54, 53, 462000, tzinfo=UTC)  # the captured alert's startsAt
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


async def jaeger_harness(
    make_harness: MakeHarness, peers: Peers, aiohttp_server: AiohttpServer, jaeger: FakeJaeger
) -> Harness:
    server = await aiohttp_server(jaeger.app)
    context = {"jaeger": {"url": str(server.make_url("")).rstrip("/"), "service": "{{ service }}.{{ namespace }}"}}
    return await make_harness({**peers.config, "context": context}, secret_values=peers.secret_values)


async def test_the_failing_traces_follow_the_page_into_its_thread(
    make_harness: MakeHarness, peers: Peers, aiohttp_server: AiohttpServer
) -> None:
    """Up to 3 failing traces of the service, those nearest the alert's start: the operation, how
    long it took, the first error (service, operation, what it said) and a link to the trace."""
    jaeger = FakeJaeger(STARTS)
    h = await jaeger_harness(make_harness, peers, aiohttp_server, jaeger)
    await h.post_payload(payload_bytes(FIRING))
    await wait_until(lambda: bool(peers.slack.roots()), what="the page")
    assert h.state.context_poster is not None
    await h.state.context_poster.idle()

    (query,) = jaeger.queries
    assert query["service"] == "nutrition-service.ai-nutritionist" and json.loads(query["tags"]) == {"error": "true"}
    assert int(query["start"]) == round((STARTS - timedelta(hours=1)).timestamp() * 1_000_000)
    (page,) = peers.slack.roots()
    (reply,) = peers.slack.replies(page.ts)
    lines = reply.text.splitlines()
    assert lines[0].startswith(":mag: *Failing traces of `nutrition-service.ai-nutritionist`* (Jaeger, between ")
    assert len(lines) == 4  # the three nearest the start: +5 s, +30 s, -120 s
    assert lines[1].startswith("• `POST /api/v1/meals` 0.81 s at ")
    assert lines[1].endswith(
        "— recipe-service.ai-nutritionist recipe-service.ai-nutritionist.svc.cluster.local:8080/*: "
        "upstream connect error or disconnect/reset before headers"
        f" · <{jaeger_url(h)}/trace/c1b2c3d4e5f60718293a4b5c6d7e8f92|c1b2c3d4e5f6>"
    )
    assert ": HTTP 503 (URX) · <" in lines[2] and "`GET /api/v1/nutrition/facts` 1.02 s" in lines[2]
    assert "5.21 s" in lines[3]


def jaeger_url(h: Harness) -> str:
    context = h.config.context.jaeger
    assert context is not None
    return context.url


async def test_a_slow_or_failing_jaeger_never_delays_the_page(
    make_harness: MakeHarness, peers: Peers, aiohttp_server: AiohttpServer
) -> None:
    jaeger = FakeJaeger(STARTS)
    jaeger.answering.clear()  # Jaeger hangs
    h = await jaeger_harness(make_harness, peers, aiohttp_server, jaeger)
    await h.post_payload(payload_bytes(FIRING))
    await wait_until(lambda: bool(peers.slack.roots() and jaeger.queries), what="the page while Jaeger hangs")
    (page,) = peers.slack.roots()
    assert peers.slack.replies(page.ts) == []

    jaeger.status = 503  # and then fails
    jaeger.answering.set()
    assert h.state.context_poster is not None
    await h.state.context_poster.idle()
    (reply,) = peers.slack.replies(page.ts)
    assert reply.text.startswith(
        ":warning: Failing traces of `nutrition-service.ai-nutritionist` could not be read: Jaeger answered HTTP 503"
    )
