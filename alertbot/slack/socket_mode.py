"""Slack's Socket Mode: slash commands and button clicks over a WebSocket that alertbot opens to
Slack, so nothing of alertbot needs to be reachable from the internet.

With an app-level token (``ALERTBOT_SLACK_APP_TOKEN`` or ``slack.app_token_file``, scope
``connections:write``), slack-sdk's aiohttp ``SocketModeClient`` asks ``apps.connections.open`` for
a WebSocket URL and keeps a connection to it (reconnecting when Slack rotates it). Each envelope is
handed to the same ``SlackCommands`` the HTTP endpoints use and acknowledged with its answer:

    {"envelope_id": "...", "type": "slash_commands", "payload": {"command": "/alertbot", ...}}
        → SlackCommands.command(...) → {"envelope_id": "...", "payload": <the ephemeral answer>}
    {"envelope_id": "...", "type": "interactive", "payload": {"type": "block_actions", ...}}
        → SlackCommands.interaction(...) → {"envelope_id": "..."} (+ payload when Slack accepts one)

Slack sends an envelope again when its ack is late, possibly to another replica's connection: each
envelope is acted on once across replicas (remembered in the store like signed HTTP requests) and
acknowledged every time. An envelope that arrives while alertbot is starting is not acknowledged,
so Slack delivers it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from alertbot.slack.commands import Command
from alertbot.slack.common import SlackMessage

log = structlog.get_logger("alertbot.slack")


class SlackHandler(Protocol):
    async def command(self, cmd: Command) -> SlackMessage: ...

    async def interaction(self, payload: Any) -> SlackMessage | None: ...


class SocketModeLink:
    """Keeps the Socket Mode connection and answers what arrives on it (see the module docstring)."""

    def __init__(
        self,
        app_token: str,
        *,
        api_url: str,
        handler: Callable[[], SlackHandler | None],
        first_delivery: Callable[[str], Awaitable[bool]],
        retry_delay: float = 5.0,
    ) -> None:
        self._handler = handler
        self._first_delivery = first_delivery
        self._retry_delay = retry_delay
        self._client = SocketModeClient(
            app_token=app_token,
            web_client=AsyncWebClient(base_url=api_url),
            logger=logging.getLogger("alertbot.slack.socket_mode"),
        )
        self._client.socket_mode_request_listeners.append(self._on_request)
        self._connecting: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect in the background (retrying while Slack cannot be reached): paging never waits for it."""
        self._connecting = asyncio.create_task(self._connect(), name="slack-socket-mode-connect")

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        await self._client.close()  # type: ignore[no-untyped-call]  # slack-sdk leaves it unannotated

    async def _connect(self) -> None:
        while True:
            try:
                await self._client.connect()  # type: ignore[no-untyped-call]
            except Exception as exc:
                log.warning("slack_socket_mode_unavailable", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(self._retry_delay)
                continue
            log.info("slack_socket_mode_connected")
            return

    async def _on_request(self, client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        handler = self._handler()
        if handler is None:
            return  # starting: no ack, Slack delivers it again
        if not await self._first_delivery(request.envelope_id):
            await self._ack(client, request, None)  # a redelivery already acted on
            return
        answer: SlackMessage | None = None
        if request.type == "slash_commands":
            answer = await handler.command(Command.of(request.payload))
        elif request.type == "interactive":
            answer = await handler.interaction(request.payload)
        else:
            log.info("slack_socket_mode_ignored", type=request.type)
        await self._ack(client, request, answer)

    async def _ack(
        self, client: AsyncBaseSocketModeClient, request: SocketModeRequest, answer: SlackMessage | None
    ) -> None:
        payload = dict(answer) if answer is not None and request.accepts_response_payload else None
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=payload))
