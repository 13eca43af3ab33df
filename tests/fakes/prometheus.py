"""A fake Prometheus HTTP API (prometheus.io/docs/prometheus/latest/querying/api/): instant queries
answered from a script of values, range queries with one series whose value follows ``curve``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web


class FakePrometheus:
    """Answers every query with the next scripted value (the last one repeats); None = no data.
    ``query_range`` answers one series, ``curve(t)`` at each step (None: no data), after ``answering``
    is set; ``range_status`` other than 200 answers that status with Prometheus's error body."""

    def __init__(self, values: list[float | None], curve: Callable[[float], float | None] = lambda t: 0.07) -> None:
        self.values = list(values)
        self.queries: list[str] = []
        self.ranges: list[dict[str, str]] = []
        self.curve = curve
        self.answering = asyncio.Event()
        self.answering.set()
        self.range_status = 200
        self.app = web.Application()
        self.app.router.add_get("/api/v1/query", self._query)
        self.app.router.add_get("/api/v1/query_range", self._query_range)

    async def _query(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        if not query:
            return _error(400, "bad_data", "empty query")
        self.queries.append(query)
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        result = [] if value is None else [{"metric": {}, "value": [time.time(), str(value)]}]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    async def _query_range(self, request: web.Request) -> web.Response:
        self.ranges.append(dict(request.query))
        await self.answering.wait()
        if self.range_status != 200:
            return _error(self.range_status, "unavailable", "the TSDB is overloaded")
        try:
            start, end, step = (float(request.query[k]) for k in ("start", "end", "step"))
        except (KeyError, ValueError):
            return _error(400, "bad_data", "invalid start, end or step")
        if not request.query.get("query") or step <= 0 or end < start:
            return _error(400, "bad_data", "invalid query, step or range")
        if (end - start) / step > 11_000:
            return _error(400, "bad_data", "exceeded maximum resolution of 11,000 points per timeseries")
        values = []
        at = start
        while at <= end:
            value = self.curve(at)
            if value is not None:
                values.append([at, str(value)])
            at += step
        result = [{"metric": {"destination_service_name": "nutrition-service"}, "values": values}] if values else []
        return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": result}})


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"status": "error", "errorType": kind, "error": message}, status=status)
