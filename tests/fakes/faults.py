"""Scripted faults for fake servers: each request takes the next fault, if any."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Fault:
    """``status`` with optional ``retry_after``; or ``delay`` seconds before answering; or ``drop``
    (close the connection without an answer)."""

    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0
    drop: bool = False
    body: dict[str, object] | None = None


class FaultQueue:
    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self.down = False  # every request fails with 503 until cleared

    def push(self, *faults: Fault) -> None:
        self._faults.extend(faults)

    async def apply(self, request: web.Request) -> web.StreamResponse | None:
        """Returns a response to send instead of the real one, or None to carry on."""
        if self.down:
            return web.json_response({"status": "unavailable"}, status=503)
        if not self._faults:
            return None
        fault = self._faults.popleft()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise ConnectionResetError("fault: dropped connection")
        if fault.status is None:
            return None
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        return web.json_response(fault.body or {"error": f"fault {fault.status}"}, status=fault.status, headers=headers)
