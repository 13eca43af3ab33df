"""A fake of Slack's Socket Mode, built from Slack's Socket Mode documentation (api.slack.com,
"Using Socket Mode"): ``apps.connections.open`` with the app-level token answers a WebSocket URL;
on that socket the server says ``{"type": "hello", ...}``, then sends envelopes

    {"envelope_id": ..., "type": "slash_commands" | "interactive" | "events_api",
     "payload": {...}, "accepts_response_payload": true | false}

and the app acknowledges each with ``{"envelope_id": ..., "payload": {...}?}``. Mounted on a
``FakeSlack``'s application, so one server is both the Web API and the socket."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import WSMsgType, web


class FakeSocketMode:
    def __init__(self, app: web.Application, app_token: str) -> None:
        self.app_token = app_token
        self.sockets: list[web.WebSocketResponse] = []
        self.connected = asyncio.Event()
        self.opened = 0  # apps.connections.open calls that succeeded
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        app.router.add_post("/api/apps.connections.open", self._open)
        app.router.add_get("/socket-mode/link", self._link)

    async def _open(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.app_token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        self.opened += 1
        url = request.url.with_scheme("ws").with_path("/socket-mode/link").with_query({"ticket": uuid.uuid4().hex})
        return web.json_response({"ok": True, "url": str(url)})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json(
            {"type": "hello", "num_connections": len(self.sockets), "connection_info": {"app_id": "A0FAKE"}}
        )
        self.connected.set()
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            ack = message.json()
            waiting = self._acks.get(ack.get("envelope_id", ""))
            if waiting is not None and not waiting.done():
                waiting.set_result(ack)
        self.sockets.remove(ws)
        return ws

    async def send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        envelope_id: str | None = None,
        accepts_response_payload: bool = True,
    ) -> dict[str, Any]:
        """Send one envelope on the newest connection and wait for its acknowledgement."""
        envelope_id = envelope_id or uuid.uuid4().hex
        acked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = acked
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        await self.sockets[-1].send_json(envelope)
        try:
            return await asyncio.wait_for(acked, timeout=10)
        finally:
            del self._acks[envelope_id]
