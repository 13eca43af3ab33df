"""A page carries the incident-response checklist: the dashboard, the failing traces and the mesh
graph of the alerting service, in PagerDuty's event and on the Slack message, from the real notifiers."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

from pytest_aiohttp import AiohttpServer

from alertbot.context.graph import FRESH_FOR, Graphs, GraphSubject
from alertbot.store import outbox
from tests.conftest import Harness, MakeHarness, Peers
from tests.fakes.jaeger import FakeJaeger
from tests.fakes.prometheus import FakePrometheus
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
    await followed_up(h)

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


async def followed_up(h: Harness, incident_id: int = 1) -> None:
    """The incident's Slack page is delivered (so its follow-ups have been started) and every
    follow-up started has finished."""

    async def delivered() -> bool:
        rows = await h.state.store.read(outbox.for_incident, incident_id)
        return any(r["channel"] == "slack" and r["status"] == outbox.DELIVERED for r in rows)

    await wait_until(delivered, what="the Slack page delivered")
    assert h.state.context_poster is not None
    await h.state.context_poster.idle()


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
    await followed_up(h)
    (reply,) = peers.slack.replies(page.ts)
    assert reply.text.startswith(
        ":warning: Failing traces of `nutrition-service.ai-nutritionist` could not be read: Jaeger answered HTTP 503"
    )


# --- the graph -----------------------------------------------------------------------------------

RULE = 'sum(rate(istio_requests_total{response_code=~"5..",destination_service_name="nutrition-service"}[5m]))'
GENERATOR = "http://prometheus:9090/graph?" + urllib.parse.urlencode({"g0.expr": f"{RULE} > 0.05", "g0.tab": "1"})
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def with_generator_url(name: str, generator_url: str = GENERATOR) -> bytes:
    """A captured payload whose alerts carry a Prometheus generatorURL (the captures were posted to
    Alertmanager's API by hand, so theirs is empty)."""
    body = json.loads(payload_bytes(name))
    for alert in body["alerts"]:
        alert["generatorURL"] = generator_url
    return json.dumps(body).encode()


async def graph_harness(
    make_harness: MakeHarness,
    peers: Peers,
    aiohttp_server: AiohttpServer,
    prometheus: FakePrometheus,
    **config: Any,
) -> Harness:
    server = await aiohttp_server(prometheus.app)
    return await make_harness(
        {**peers.config, "prometheus": {"url": str(server.make_url("")).rstrip("/")}, **config},
        secret_values=peers.secret_values,
    )


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    assert png.startswith(PNG_MAGIC), png[:16]
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


async def test_the_graph_of_the_alerts_query_follows_the_page_into_its_thread(
    make_harness: MakeHarness, peers: Peers, aiohttp_server: AiohttpServer
) -> None:
    """The rule's expression without its comparison, over the hour before the alert until now, from
    query_range, uploaded with Slack's external upload flow into the page's thread."""
    prometheus = FakePrometheus([0.0])
    h = await graph_harness(make_harness, peers, aiohttp_server, prometheus)
    await h.post_payload(with_generator_url(FIRING))
    await wait_until(lambda: bool(peers.slack.roots()), what="the page")
    await followed_up(h)

    (query,) = prometheus.ranges
    assert query["query"] == RULE
    assert float(query["start"]) == (STARTS - timedelta(hours=1)).timestamp()
    (page,) = peers.slack.roots()
    (reply,) = peers.slack.replies(page.ts)
    (uploaded,) = reply.files
    assert uploaded.content is not None and png_size(uploaded.content) == (800, 320)
    assert uploaded.filename == "incident-1.png" and uploaded.alt_txt.startswith(f"{RULE} from ")
    assert uploaded.title.startswith("HighErrorRate nutrition-service (critical), ")
    methods = [method for method, _ in peers.slack.calls]
    assert methods[-2:] == ["files.getUploadURLExternal", "files.completeUploadExternal"]


async def test_a_slow_or_failing_prometheus_never_delays_the_page_and_the_thread_says_why(
    make_harness: MakeHarness, peers: Peers, aiohttp_server: AiohttpServer
) -> None:
    prometheus = FakePrometheus([0.0])
    prometheus.answering.clear()  # Prometheus hangs
    h = await graph_harness(make_harness, peers, aiohttp_server, prometheus)
    await h.post_payload(with_generator_url(FIRING))
    await wait_until(lambda: bool(peers.slack.roots() and prometheus.ranges), what="the page while Prometheus hangs")
    (page,) = peers.slack.roots()
    assert peers.slack.replies(page.ts) == []

    prometheus.range_status = 503  # and then fails
    prometheus.answering.set()
    await followed_up(h)
    (reply,) = peers.slack.replies(page.ts)
    assert reply.text.startswith(":warning: No graph: Prometheus rejected the query ")
    assert reply.text.endswith("the TSDB is overloaded")


async def test_an_alert_without_a_query_gets_no_graph_and_no_noise(
    make_harness: MakeHarness, peers: Peers, aiohttp_server: AiohttpServer
) -> None:
    prometheus = FakePrometheus([0.0])
    h = await graph_harness(make_harness, peers, aiohttp_server, prometheus)
    await h.post_payload(payload_bytes(FIRING))  # an empty generatorURL, no alertbot_query
    await wait_until(lambda: bool(peers.slack.roots()), what="the page")
    await followed_up(h)
    assert prometheus.ranges == [] and peers.slack.replies(peers.slack.roots()[0].ts) == []
    response = await h.client.get("/api/v1/incidents/1/graph.png")
    assert response.status == 404
    assert "its alert has no query" in (await response.json())["error"]["message"]


async def test_the_graph_is_served_cached_and_linked_from_pagerduty_with_a_signed_url(
    make_harness: MakeHarness, peers: Peers, aiohttp_server: AiohttpServer
) -> None:
    """GET /api/v1/incidents/{id}/graph.png: the API token, or the page's signed link for that one
    incident; drawn once for the page, the thread and every reader while fresh."""
    prometheus = FakePrometheus([0.0])
    server = await aiohttp_server(prometheus.app)
    h = await make_harness(
        {
            **peers.config,
            "prometheus": {"url": str(server.make_url("")).rstrip("/")},
            "server": {"external_url": "https://alertbot.example.com/"},
        },
        secret_values={**peers.secret_values, "api_token": "api-secret"},
    )
    await h.post_payload(with_generator_url(FIRING), token="api-secret")
    await wait_until(lambda: bool(peers.pagerduty.triggers() and peers.slack.roots()), what="the page")
    await followed_up(h)

    links = {link["text"]: link["href"] for link in peers.pagerduty.triggers()[0]["links"]}
    graph_url = urllib.parse.urlsplit(links["Graph"])
    assert (graph_url.netloc, graph_url.path) == ("alertbot.example.com", "/api/v1/incidents/1/graph.png")
    signed = f"{graph_url.path}?{graph_url.query}"

    (uploaded,) = peers.slack.replies(peers.slack.roots()[0].ts)[0].files
    by_link = await h.client.get(signed)  # a browser following the link from PagerDuty: no token
    assert by_link.status == 200 and by_link.content_type == "image/png"
    assert await by_link.read() == uploaded.content
    by_token = await h.client.get(graph_url.path, headers={"Authorization": "Bearer api-secret"})
    assert by_token.status == 200
    assert len(prometheus.ranges) == 1  # the thread's graph, cached for the link and the API

    assert (await h.client.get(graph_url.path)).status == 401
    assert (await h.client.get(graph_url.path + "?sig=" + "0" * 32)).status == 401
    bad_sig_with_token = await h.client.get(graph_url.path + "?sig=x", headers={"Authorization": "Bearer api-secret"})
    assert bad_sig_with_token.status == 200  # the API token opens it whatever the link says
    other = signed.replace("/incidents/1/", "/incidents/2/")  # one incident's signature opens no other
    assert (await h.client.get(other)).status == 401


async def test_readers_asking_while_it_is_drawn_share_one_drawing(aiohttp_server: AiohttpServer) -> None:
    """Five readers of a graph being drawn wait for that one drawing; a firing incident's graph is
    drawn again once it is older than FRESH_FOR, a resolved one's never."""
    prometheus = FakePrometheus([0.0])
    prometheus.answering.clear()
    server = await aiohttp_server(prometheus.app)
    now = {"at": STARTS + timedelta(minutes=10)}
    graphs = Graphs(lambda: str(server.make_url("")), lambda: timedelta(hours=1), lambda: now["at"])
    firing = GraphSubject(1, "HighErrorRate", {}, {}, GENERATOR, STARTS, None)
    readers = [asyncio.ensure_future(graphs.graph(firing)) for _ in range(5)]
    await wait_until(lambda: bool(prometheus.ranges), what="the drawing to start")
    prometheus.answering.set()
    drawn = await asyncio.gather(*readers)
    assert all(graph is drawn[0] for graph in drawn) and len(prometheus.ranges) == 1

    now["at"] += FRESH_FOR - timedelta(seconds=1)
    assert await graphs.graph(firing) is drawn[0]
    now["at"] += timedelta(seconds=1)
    assert await graphs.graph(firing) is not drawn[0] and len(prometheus.ranges) == 2

    resolved = GraphSubject(2, "HighErrorRate", {}, {}, GENERATOR, STARTS, STARTS + timedelta(minutes=3))
    once = await graphs.graph(resolved)
    now["at"] += timedelta(days=1)
    assert await graphs.graph(resolved) is once and len(prometheus.ranges) == 3
    await graphs.close()
