"""Which PromQL an incident's graph draws (alertbot/domain/graph_query.py)."""

from __future__ import annotations

import urllib.parse

import pytest

from alertbot.domain.graph_query import GraphQuery, graph_query

RULE = (
    'sum by (destination_service_name) (rate(istio_requests_total{response_code=~"5.."}[5m]))'
    " / sum by (destination_service_name) (rate(istio_requests_total[5m]))"
)


def generator(expr: str) -> str:
    """A generatorURL as Prometheus 2.42 writes it (web.external-url + /graph?g0.expr=…&g0.tab=1)."""
    return "http://prometheus:9090/graph?" + urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "1"})


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (f"{RULE} > 0.05", GraphQuery(RULE, 0.05, ">")),
        (f"{RULE} >= bool 5e-2", GraphQuery(RULE, 0.05, ">=")),
        ("up{job='mesh'} == 0", GraphQuery("up{job='mesh'}", 0.0, "==")),
        (
            "histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 5",
            GraphQuery("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))", 5.0, ">"),
        ),
        ("rate(x[5m])", GraphQuery("rate(x[5m])", None, None)),
        ("a > 1 or b > 2", GraphQuery("a > 1 or b > 2", None, None)),  # no one threshold to draw
        ("a > b > 1", GraphQuery("a > b > 1", None, None)),  # its left side is itself a filter
        ("x == on(job) group_left y > 1", GraphQuery("x == on(job) group_left y > 1", None, None)),
        ('x{path="/a > 1"} > 3', GraphQuery('x{path="/a > 1"}', 3.0, ">")),
    ],
)
def test_the_rules_expression_is_drawn_without_its_comparison(expr: str, expected: GraphQuery) -> None:
    assert graph_query({}, generator(expr)) == expected


def test_an_annotation_overrides_the_query_and_the_threshold() -> None:
    annotations = {"alertbot_query": "rate(errors_total[1m]) > 3", "alertbot_threshold": "2.5"}
    assert graph_query(annotations, generator("ignored > 1")) == GraphQuery("rate(errors_total[1m])", 2.5, ">")
    # An unreadable or infinite threshold keeps the rule's own.
    for unreadable in ("lots", "nan", "inf"):
        assert graph_query({"alertbot_threshold": unreadable}, generator("x > 1")) == GraphQuery("x", 1.0, ">")
    # A comment in the annotation is not the query's (nor its threshold).
    annotated = {"alertbot_query": 'rate(e{path="#a"}[1m]) > 1  # page when > 5\n'}
    assert graph_query(annotated, "") == GraphQuery('rate(e{path="#a"}[1m])', 1.0, ">")


@pytest.mark.parametrize(
    "generator_url", ["", "http://prometheus:9090/graph", "http://prometheus:9090/graph?g0.tab=1", "not a url ["]
)
def test_no_query_no_graph(generator_url: str) -> None:
    assert graph_query({}, generator_url) is None


def test_an_overlong_query_is_not_graphed() -> None:
    assert graph_query({"alertbot_query": "x" * 5000}, "") is None
