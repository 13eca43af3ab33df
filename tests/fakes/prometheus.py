"""A fake Prometheus HTTP API: instant queries answered from a script of values."""

from __future__ import annotations

import time

from aiohttp import web


class FakePrometheus:
    """Answers every query with the next scripted value (the last one repeats); None = no data."""

    def __init__(self, values: list[float | None]) -> None:
        self.values = list(values)
        self.queries: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/api/v1/query", self._query)

    async def _query(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        if not query:
            return web.json_response({"status": "error", "errorType": "bad_data", "error": "empty query"}, status=400)
        self.queries.append(query)
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        result = [] if value is None else [{"metric": {}, "value": [time.time(), str(value)]}]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})
