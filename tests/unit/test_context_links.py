"""Deep links on a page (``context``): the seed stack's Grafana, Jaeger and Kiali, and templates of
one's own — filled from the alert, percent-encoded in URLs, left out when the alert cannot fill them."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alertbot.errors import ConfigError
from alertbot.notify.links import ContextLink, context_links
from alertbot.notify.pagerduty import build_event
from alertbot.notify.slack_blocks import alert_blocks
from alertbot.settings import parse_config
from tests.helpers import notifications

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
STACK: dict[str, Any] = {
    "lookback": "30m",
    "grafana": {"url": "https://grafana.example.com/", "dashboard": "istio-service"},
    "jaeger": {"url": "https://jaeger.example.com", "service": "{{ service }}.{{ namespace }}"},
    "kiali": {"url": "https://kiali.example.com"},
}


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def test_the_stack_links_open_the_service_over_the_alerts_window() -> None:
    (n,) = notifications("am-higherrorrate-nutrition-service-firing.json")
    context = parse_config({"context": STACK}).context
    grafana, jaeger, kiali = context_links(context, n, NOW)
    start, window_start = ms(n.starts_at), ms(n.starts_at - timedelta(minutes=30))

    assert grafana == ContextLink(
        "Grafana",
        "https://grafana.example.com/d/istio-service?var-service=nutrition-service"
        f"&var-namespace=ai-nutritionist&from={window_start}&to={ms(NOW)}",  # firing: until now
    )
    assert jaeger.text == "Failing traces (Jaeger)"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(jaeger.url).query)
    assert query == {
        "service": ["nutrition-service.ai-nutritionist"],
        "tags": ['{"error":"true"}'],
        "start": [str(window_start * 1000)],  # Jaeger's UI counts in microseconds
        "end": [str(ms(NOW) * 1000)],
        "lookback": ["custom"],
        "limit": ["20"],
    }
    assert kiali == ContextLink(
        "Mesh graph (Kiali)",
        "https://kiali.example.com/console/graph/namespaces/?namespaces=ai-nutritionist"
        "&graphType=versionedApp&duration=1800",
    )
    assert start > window_start


def test_templates_of_ones_own_are_filled_encoded_and_skipped_when_unfillable() -> None:
    (n,) = notifications("am-higherrorrate-nutrition-service-firing.json")
    hostile = n.model_copy(update={"labels": {**n.labels, "pod": "a&admin=1/../x y"}})
    links = [
        {"text": "Logs of {{ labels.pod }}", "url": "https://logs.example/q?pod={{ labels.pod }}&t={{starts_at_ms}}"},
        {"text": "Ticket", "url": "https://tickets.example.com/{{ labels.ticket }}"},  # no such label: left out
        {"text": "Summary", "url": "https://search.example.com/?q={{ annotations.summary }}"},
    ]
    context = parse_config({"context": {"links": links}}).context
    logs, summary = context_links(context, hostile, NOW)
    assert logs.text == "Logs of a&admin=1/../x y"  # text is shown as is (Slack and PagerDuty escape it)
    assert logs.url == f"https://logs.example/q?pod=a%26admin%3D1%2F..%2Fx%20y&t={ms(n.starts_at)}"
    assert summary.url.startswith("https://search.example.com/?q=") and " " not in summary.url


def test_a_resolved_alerts_window_ends_when_it_ended() -> None:
    (n,) = notifications("am-higherrorrate-nutrition-service-resolved.json", "resolve")
    assert n.ends_at is not None
    context = parse_config({"context": {"links": [{"text": "w", "url": "https://x.example/{{ ends_at_ms }}"}]}}).context
    (link,) = context_links(context, n, NOW)
    assert link.url == f"https://x.example/{ms(n.ends_at)}"


def test_links_reach_pagerduty_and_slack() -> None:
    (n,) = notifications("am-higherrorrate-nutrition-service-firing.json")
    links = context_links(parse_config({"context": STACK}).context, n, NOW)
    event = build_event(n, "R0UT1NGKEYfake0000000000000000001", links)
    shown = [link["text"] for link in event["links"]]
    assert shown[-3:] == ["Grafana", "Failing traces (Jaeger)", "Mesh graph (Kiali)"]
    blocks = alert_blocks(n, resolved=False, links=links)
    (buttons,) = [b["elements"] for b in blocks if b.get("block_id") == "links"]
    assert {b["text"]["text"]: b["url"] for b in buttons}["Grafana"] == links[0].url


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"links": [{"text": "x", "url": "https://x/{{ labels }}"}]}, "context.links[0].url: unknown placeholder"),
        ({"links": [{"text": "{{ nope }}", "url": "https://x/"}]}, "context.links[0].text: unknown placeholder"),
        ({"links": [{"text": "x", "url": "javascript:alert(1)"}]}, "must be an http:// or https:// URL"),
        ({"grafana": {"url": "https://g"}}, "context.grafana.dashboard"),
        ({"jaeger": {"url": "https://j", "service": "{{ labels.app }}{{ starts }}"}}, "unknown placeholder"),
    ],
)
def test_bad_link_config_is_refused_naming_the_key(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"context": context})
    assert message in caught.value.message
