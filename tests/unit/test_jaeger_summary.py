"""A Jaeger trace summed up for a page: root operation, duration, and where the error started —
and anything that is not a trace in Jaeger's model is skipped, never an exception."""

from __future__ import annotations

import json
from typing import Any

import pytest

from alertbot.context.jaeger import summarise
from tests.fakes.jaeger import TRACES

UI = "https://jaeger.example.com/"


def trace(trace_id: str) -> dict[str, Any]:
    traces: list[dict[str, Any]] = json.loads(TRACES.read_text())["traces"]
    return next(t for t in traces if t["traceID"] == trace_id)


def test_the_error_is_where_it_started_not_where_it_was_passed_on() -> None:
    summary = summarise(trace("a1b2c3d4e5f60718293a4b5c6d7e8f90"), UI)
    assert summary is not None
    assert summary.operation == "GET /api/v1/meal-plans"
    assert summary.duration_ms == 2340.0
    where = "recipe-service.ai-nutritionist recipe-service.ai-nutritionist.svc.cluster.local:8080/*"
    assert summary.error == f"{where}: HTTP 503 (UF)"
    assert summary.url == "https://jaeger.example.com/trace/a1b2c3d4e5f60718293a4b5c6d7e8f90"


def test_a_trace_without_an_error_span_says_so() -> None:
    summary = summarise(trace("f1b2c3d4e5f60718293a4b5c6d7e8f95"), UI)
    assert summary is not None and summary.error == "no span marked as an error"


@pytest.mark.parametrize(
    "garbage",
    [
        {},
        {"traceID": "not hex!", "spans": [{"startTime": 1}]},
        {"traceID": "abc", "spans": []},
        {"traceID": "abc", "spans": [{"spanID": "1", "startTime": "soon"}]},
        {"traceID": "abc", "spans": "many"},
    ],
)
def test_what_is_not_a_trace_is_skipped(garbage: dict[str, Any]) -> None:
    assert summarise(garbage, UI) is None
