"""A small client of Prometheus's HTTP API (``/api/v1/query``, ``/api/v1/query_range``): the value a
runbook's ``prometheus.check`` step waits on, and the series an incident's graph draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from alertbot.errors import PrometheusError

# query_range answers at most 11,000 points per series; a graph needs far fewer.
MAX_POINTS = 11_000
MAX_VALUE = 1e300


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and its (unix seconds, value) samples, NaN left out."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


class Prometheus:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def value(self, query: str) -> float | None:
        """The query's value (the first series' sample); None when it returns no data."""
        data = await self._get("/api/v1/query", {"query": query})
        result = data.get("result")
        if data.get("resultType") == "scalar" and isinstance(result, list):
            sample = result
        elif isinstance(result, list) and result:
            sample = result[0].get("value")
        else:
            return None
        number = _number(sample)
        return None if number is None or math.isnan(number) else number

    async def range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        """The query evaluated every ``step`` from ``start`` to ``end`` (Prometheus's ``query_range``)."""
        if (end - start) / step > MAX_POINTS:
            raise PrometheusError(f"{end - start} at {step} steps is more than {MAX_POINTS} points")
        data = await self._get(
            "/api/v1/query_range",
            {
                "query": query,
                "start": f"{start.timestamp():.3f}",
                "end": f"{end.timestamp():.3f}",
                "step": f"{step.total_seconds():g}",
            },
        )
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise PrometheusError(f"query_range answered a {data.get('resultType')!r}, not a matrix")
        series = []
        try:
            for item in data["result"]:
                points = []
                for sample in item.get("values") or []:
                    number = _number(sample)
                    # NaN and ±Inf are gaps; beyond ±1e300 no axis can be scaled to the value.
                    if number is not None and math.isfinite(number) and abs(number) < MAX_VALUE:
                        points.append((float(sample[0]), number))
                labels = item.get("metric") or {}
                series.append(Series({str(k): str(v) for k, v in labels.items()}, points))
        except (AttributeError, TypeError, ValueError, IndexError) as exc:
            raise PrometheusError(f"query_range answered a malformed matrix: {type(exc).__name__}") from None
        return series

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(self._url + path, params=params) as resp,
            ):
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PrometheusError(f"Prometheus query failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"Prometheus rejected the query {params['query']!r}: {error}")
        data = body.get("data")
        return data if isinstance(data, dict) else {}


def _number(sample: Any) -> float | None:
    try:
        return float(sample[1])
    except (TypeError, ValueError, IndexError):
        return None
