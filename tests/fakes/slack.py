"""A fake Slack Web API: chat.postMessage, chat.update, auth.test — checked against the published schema."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes.faults import FaultQueue
from tests.helpers import DATA

SPEC = json.loads((DATA / "specs" / "slack-web-subset.json").read_text())


def _required_params(method: str) -> set[str]:
    operation = SPEC["paths"][f"/{method}"].get("post") or SPEC["paths"][f"/{method}"]["get"]
    return {p["name"] for p in operation["parameters"] if p.get("required") and p["in"] == "formData"}


def _known_params(method: str) -> set[str]:
    operation = SPEC["paths"][f"/{method}"].get("post") or SPEC["paths"][f"/{method}"]["get"]
    return {p["name"] for p in operation["parameters"] if p["in"] == "formData"}


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class FakeSlack:
    """One workspace: a bot token, channels by name (#x → C…), messages by ts."""

    def __init__(self, token: str, channels: list[str]) -> None:
        self.token = token
        self.channel_ids = {name: f"C{index:08d}" for index, name in enumerate(channels, start=1)}
        self.messages: dict[str, Message] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.faults = FaultQueue()
        self._seq = 0
        self.app = web.Application()
        for method in ("chat.postMessage", "chat.update"):
            self.app.router.add_post(f"/api/{method}", self._handler(method))
        self.app.router.add_route("*", "/api/auth.test", self._auth_test)
        self.app.router.add_route("*", "/api/usergroups.users.list", self._usergroup_members)
        self.usergroups: dict[str, list[str]] = {}

    def _handler(self, method: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            faulted = await self.faults.apply(request)
            if faulted is not None:
                return faulted
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            if request.content_type == "application/json":
                params = await request.json()
            else:
                params = dict(await request.post())
            unknown = set(params) - _known_params(method)
            missing = _required_params(method) - set(params)
            if unknown or missing:
                return web.json_response(
                    {
                        "ok": False,
                        "error": "invalid_arg_name",
                        "detail": {"unknown": sorted(unknown), "missing": sorted(missing)},
                    }
                )
            self.calls.append((method, params))
            if method == "chat.postMessage":
                return self._post(params)
            return self._update(params)

        return handle

    def _resolve_channel(self, channel: str) -> str | None:
        if channel in self.channel_ids.values():
            return channel
        return self.channel_ids.get(channel)

    def _post(self, params: dict[str, Any]) -> web.Response:
        channel = self._resolve_channel(params["channel"])
        if channel is None:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if not params.get("text") and not params.get("blocks"):
            return web.json_response({"ok": False, "error": "no_text"})
        self._seq += 1
        ts = f"{int(time.time())}.{self._seq:06d}"
        thread = params.get("thread_ts")
        if thread is not None and thread not in self.messages:
            return web.json_response({"ok": False, "error": "thread_not_found"})
        self.messages[ts] = Message(channel, ts, params.get("text", ""), _blocks(params), thread)
        return web.json_response(
            {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"type": "message", "text": params.get("text", ""), "ts": ts},
            }
        )

    def _update(self, params: dict[str, Any]) -> web.Response:
        message = self.messages.get(params["ts"])
        if message is None or message.channel != params["channel"]:
            return web.json_response({"ok": False, "error": "message_not_found"})
        message.history.append({"text": message.text, "blocks": message.blocks})
        message.text = params.get("text", message.text)
        message.blocks = _blocks(params) or message.blocks
        return web.json_response({"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text})

    async def _auth_test(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response(
            {
                "ok": True,
                "url": "https://example.slack.com/",
                "team": "t",
                "user": "alertbot",
                "team_id": "T1",
                "user_id": "U1",
            }
        )

    async def _usergroup_members(self, request: web.Request) -> web.Response:
        """Not in the stored spec subset; shaped like Slack's usergroups.users.list."""
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        params = await request.json() if request.content_type == "application/json" else dict(request.query)
        group = params.get("usergroup") or (await request.post()).get("usergroup")
        if group not in self.usergroups:
            return web.json_response({"ok": False, "error": "no_such_subteam"})
        return web.json_response({"ok": True, "users": self.usergroups[str(group)]})

    def roots(self) -> list[Message]:
        """Top-level messages (one per alert, updated in place)."""
        return [m for m in self.messages.values() if m.thread_ts is None]

    def replies(self, ts: str) -> list[Message]:
        return [m for m in self.messages.values() if m.thread_ts == ts]


def _blocks(params: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = params.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if blocks is None:
        return []
    assert isinstance(blocks, list) and all(isinstance(b, dict) and "type" in b for b in blocks), blocks
    return blocks
