"""A fake PagerDuty Events API v2 that validates every event against the official OpenAPI schema."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
from aiohttp import web

from tests.fakes.faults import FaultQueue
from tests.helpers import DATA

SPEC = json.loads((DATA / "specs" / "pagerduty-events-v2.openapi.json").read_text())
ENQUEUE_SCHEMA = {
    **SPEC["paths"]["/enqueue"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    "components": SPEC["components"],
}


class FakePagerDuty:
    """Accepts events for one routing key; records them; answers like PagerDuty (202/400/429/5xx)."""

    def __init__(self, routing_key: str, *more_keys: str) -> None:
        self.routing_keys = {routing_key, *more_keys}
        self.events: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.faults = FaultQueue()
        self.latency = 0.0  # seconds every request takes (a slow PagerDuty)
        self.app = web.Application()
        self.app.router.add_post("/v2/enqueue", self._enqueue)

    async def _enqueue(self, request: web.Request) -> web.StreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        faulted = await self.faults.apply(request)
        if faulted is not None:
            return faulted
        if request.content_type != "application/json":
            return self._invalid(f"content type {request.content_type}")
        try:
            event = await request.json()
        except json.JSONDecodeError:
            return self._invalid("body is not JSON")
        try:
            jsonschema.validate(event, ENQUEUE_SCHEMA)
        except jsonschema.ValidationError as exc:
            return self._invalid(f"schema: {exc.message} at {list(exc.absolute_path)}")
        if event["routing_key"] not in self.routing_keys:
            return self._invalid("Invalid routing key")
        if event["event_action"] == "trigger" and len(event["payload"]["summary"]) > 1024:
            return self._invalid("summary longer than 1024")
        if len(event.get("dedup_key", "")) > 255:
            return self._invalid("dedup_key longer than 255")
        self.events.append(event)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key", "")}, status=202
        )

    def _invalid(self, why: str) -> web.Response:
        self.rejected.append(why)
        return web.json_response(
            {"status": "invalid event", "message": "Event object is invalid", "errors": [why]}, status=400
        )

    def triggers(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_action"] == "trigger"]

    def incidents(self) -> dict[str, int]:
        """Triggers by dedup key, as PagerDuty counts them: one incident per key, however often sent."""
        counts: dict[str, int] = {}
        for event in self.triggers():
            counts[event["dedup_key"]] = counts.get(event["dedup_key"], 0) + 1
        return counts

    def resolves(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_action"] == "resolve"]
