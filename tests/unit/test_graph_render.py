"""Which series an incident's graph draws, and text from alerts drawn as written (alertbot/context/graph.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alertbot.context.graph import MAX_SERIES, alert_first, render_png
from alertbot.domain.graph_query import GraphQuery
from alertbot.prometheus import Series

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def flat(labels: dict[str, str], value: float) -> Series:
    return Series(labels, [(NOW.timestamp() - 60 * i, value) for i in range(10)])


def test_the_alerts_own_series_is_drawn_first_among_hundreds() -> None:
    """`up == 0` drawn as `up`: 300 targets answer, the down one is the alert's, and it leads."""
    targets = [flat({"job": "mesh", "instance": f"10.0.0.{i}:15090"}, 1.0) for i in range(300)]
    targets[217] = flat({"job": "mesh", "instance": "10.0.0.217:15090"}, 0.0)
    alert = {"alertname": "TargetDown", "job": "mesh", "instance": "10.0.0.217:15090", "severity": "critical"}
    ordered = alert_first(targets, alert, GraphQuery("up", 0.0, "=="))
    assert ordered[0].labels["instance"] == "10.0.0.217:15090"


def test_without_the_alerts_labels_the_series_furthest_past_the_threshold_lead() -> None:
    series = [flat({"pod": p}, v) for p, v in (("a", 0.5), ("b", 0.1), ("c", 0.9))]
    above = alert_first(series, {}, GraphQuery("x", 0.3, ">"))
    below = alert_first(series, {}, GraphQuery("x", 0.3, "<"))
    assert [s.labels["pod"] for s in above] == ["c", "a", "b"]
    assert [s.labels["pod"] for s in below] == ["b", "a", "c"]


def test_dollar_signs_in_alert_text_are_drawn_as_written_not_as_tex() -> None:
    """matplotlib reads $…$ as math and raises on bad markup: a title or a regex-like label value
    from an alert must still give a graph."""
    series = [flat({"route": "^/a$|^/b$"}, 0.2), flat({"route": "^/c$"}, 0.1)]
    png = render_png(
        "HighErrorRate $\\foo$ (critical)",
        GraphQuery("rate(x[1m])", 0.05, ">"),
        series * MAX_SERIES,
        started=NOW - timedelta(minutes=5),
        start=NOW - timedelta(hours=1),
        end=NOW,
    )
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
