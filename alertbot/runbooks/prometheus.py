"""A small Prometheus HTTP API client for ``prometheus.check`` steps (instant queries only)."""

from __future__ import annotations

import math

import aiohttp

from alertbot.errors import RunbookError


class Prometheus:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._url = url.rstrip("/") + "/api/v1/query"
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def value(self, query: str) -> float | None:
        """The query's value (the first series' sample); None when it returns no data."""
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(self._url, params={"query": query}) as resp,
            ):
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RunbookError(f"Prometheus query failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise RunbookError(f"Prometheus rejected the query {query!r}: {error}")
        data = body.get("data", {})
        result = data.get("result")
        if data.get("resultType") == "scalar" and isinstance(result, list):
            sample = result
        elif isinstance(result, list) and result:
            sample = result[0].get("value")
        else:
            return None
        try:
            number = float(sample[1])
        except (TypeError, ValueError, IndexError):
            return None
        return None if math.isnan(number) else number
