"""A fake Jaeger query service: ``GET /api/traces`` as Jaeger's HTTP API answers it (built from
jaegertracing/jaeger cmd/query/app: query_parser.go for the parameters — ``service`` required,
``start``/``end`` in microseconds, ``tags`` a JSON map, ``limit`` — and the structured answer
``{"data", "total", "limit", "offset", "errors"}``; traces in the JSON model of model/json/model.go).
Traces come from tests/data/jaeger/traces.json, their times moved to start at ``base``."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

TRACES = Path(__file__).parents[1] / "data" / "jaeger" / "traces.json"


def _error(status: int, message: str) -> web.Response:
    body = {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": status, "msg": message}]}
    return web.json_response(body, status=status)


class FakeJaeger:
    def __init__(self, base: datetime) -> None:
        base_us = round(base.timestamp() * 1_000_000)
        self.traces: list[dict[str, Any]] = json.loads(TRACES.read_text())["traces"]
        for trace in self.traces:
            for span in trace["spans"]:
                span["startTime"] += base_us
        self.queries: list[dict[str, str]] = []
        self.status = 200  # anything else: answered as Jaeger's errors are
        self.answering = asyncio.Event()  # cleared: requests wait (a slow Jaeger)
        self.answering.set()
        self.app = web.Application()
        self.app.router.add_get("/api/traces", self._traces)

    async def _traces(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.queries.append(query)
        await self.answering.wait()
        if self.status != 200:
            return _error(self.status, "storage unavailable")
        if not query.get("service"):
            return _error(400, "parameter 'service' is required")
        try:
            start, end = int(query["start"]), int(query["end"])
            limit = int(query.get("limit", "100"))
            tags = json.loads(query.get("tags", "{}"))
        except (KeyError, ValueError):
            return _error(400, "unable to parse param")
        if not isinstance(tags, dict):
            return _error(400, "malformed 'tags' parameter")
        found = [copy.deepcopy(t) for t in self.traces if self._matches(t, query["service"], start, end, tags)]
        return web.json_response({"data": found[:limit], "total": 0, "limit": 0, "offset": 0, "errors": None})

    @staticmethod
    def _matches(trace: dict[str, Any], service: str, start: int, end: int, tags: dict[str, str]) -> bool:
        """A span of ``service`` in the window carrying every tag (values compared as strings, as Jaeger does)."""
        for span in trace["spans"]:
            if trace["processes"][span["processID"]]["serviceName"] != service:
                continue
            if not start <= span["startTime"] <= end:
                continue
            values = {t["key"]: str(t["value"]).lower() for t in span.get("tags", [])}
            if all(values.get(k) == str(v).lower() for k, v in tags.items()):
                return True
        return False
