"""A fake Slack Web API: chat.postMessage, chat.update, auth.test — checked against the published schema —
and the file upload flow (files.getUploadURLExternal → POST the bytes → files.completeUploadExternal)
and conversations.open (a direct message's channel), whose arguments come from the methods' reference
pages on docs.slack.dev (the published schema predates them)."""

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


# docs.slack.dev/reference/methods/files.getUploadURLExternal and …/files.completeUploadExternal:
# (required, optional) arguments besides the token.
DOCUMENTED_METHODS = {
    "files.getUploadURLExternal": ({"filename", "length"}, {"alt_txt", "snippet_type"}),
    "files.completeUploadExternal": (
        {"files"},
        {"channel_id", "channels", "thread_ts", "initial_comment", "blocks"},
    ),
    # docs.slack.dev/reference/methods/conversations.open: a DM (or group DM) with these users.
    "conversations.open": (set(), {"users", "channel", "return_im", "prevent_creation"}),
}


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int  # as announced to files.getUploadURLExternal
    alt_txt: str = ""
    title: str = ""
    content: bytes | None = None  # None until the bytes are posted to the upload URL


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    broadcast: bool = False  # a thread reply also sent to the channel (reply_broadcast)
    history: list[dict[str, Any]] = field(default_factory=list)
    files: list[UploadedFile] = field(default_factory=list)  # shared with the message (file uploads)


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
        self.files: dict[str, UploadedFile] = {}
        for method in DOCUMENTED_METHODS:
            self.app.router.add_post(f"/api/{method}", self._handler(method))
        # Slack answers upload URLs on files.slack.com; here on the fake's own address.
        self.app.router.add_post("/upload/v1/{file_id}", self._upload)

    def _handler(self, method: str) -> Handler:
        """Every Web API method: faults, the bot token, then the method's arguments checked (from the
        query string and the body, as Slack reads them; slack-sdk sends the files methods' arguments
        in the query string)."""
        if method in DOCUMENTED_METHODS:
            required, optional = DOCUMENTED_METHODS[method]
            known = required | optional | {"token"}
        else:
            required, known = _required_params(method), _known_params(method)

        async def handle(request: web.Request) -> web.StreamResponse:
            faulted = await self.faults.apply(request)
            if faulted is not None:
                return faulted
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            body = await request.json() if request.content_type == "application/json" else dict(await request.post())
            params = {**request.query, **body}
            unknown, missing = set(params) - known, required - set(params)
            if unknown or missing:
                return web.json_response(
                    {
                        "ok": False,
                        "error": "invalid_arg_name",
                        "detail": {"unknown": sorted(unknown), "missing": sorted(missing)},
                    }
                )
            self.calls.append((method, params))
            answer = {
                "chat.postMessage": self._post,
                "chat.update": self._update,
                "files.completeUploadExternal": self._complete,
                "conversations.open": self._open,
            }.get(method)
            return answer(params) if answer is not None else self._upload_url(request, params)

        return handle

    def _upload_url(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        try:
            length = int(params["length"])
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        self._seq += 1
        file_id = f"F{self._seq:010d}"
        self.files[file_id] = UploadedFile(file_id, str(params["filename"]), length, str(params.get("alt_txt", "")))
        upload_url = str(request.url.with_path(f"/upload/v1/{file_id}").with_query(None))
        return web.json_response({"ok": True, "upload_url": upload_url, "file_id": file_id})

    async def _upload(self, request: web.Request) -> web.Response:
        uploaded = self.files.get(request.match_info["file_id"])
        if uploaded is None:
            return web.Response(status=404, text="unknown upload")
        if "Authorization" in request.headers:  # the upload URL is the credential; a token is not sent
            return web.Response(status=400, text="unexpected Authorization header")
        body = await request.read()
        if len(body) != uploaded.length:
            return web.Response(status=400, text=f"length {len(body)} is not the announced {uploaded.length}")
        uploaded.content = body
        return web.Response(text=f"OK - {len(body)}")

    def _complete(self, params: dict[str, Any]) -> web.Response:
        files = params["files"]
        items = json.loads(files) if isinstance(files, str) else files
        uploads = []
        for item in items:
            uploaded = self.files.get(item.get("id", ""))
            if uploaded is None or uploaded.content is None:
                return web.json_response({"ok": False, "error": "file_not_found"})
            uploaded.title = str(item.get("title") or uploaded.filename)
            uploads.append(uploaded)
        thread = params.get("thread_ts")
        channel = self._resolve_channel(str(params.get("channel_id", "")))
        if thread is not None and (channel is None or thread not in self.messages):
            return web.json_response({"ok": False, "error": "invalid_thread_ts" if channel else "channel_not_found"})
        if channel is not None:  # the files are shared as a message (in the thread when one is named)
            self._seq += 1
            ts = f"{int(time.time())}.{self._seq:06d}"
            text = str(params.get("initial_comment", ""))
            self.messages[ts] = Message(channel, ts, text, [], thread, files=uploads)
        return web.json_response({"ok": True, "files": [{"id": u.id, "title": u.title} for u in uploads]})

    def _open(self, params: dict[str, Any]) -> web.Response:
        """A direct message's channel with one user: D…, the same for the same user."""
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if len(users) != 1:
            return web.json_response({"ok": False, "error": "not_enough_users" if not users else "too_many_users"})
        name = f"@{users[0]}"
        if name not in self.channel_ids:
            self.channel_ids[name] = f"D{len(self.channel_ids) + 1:08d}"
        return web.json_response({"ok": True, "channel": {"id": self.channel_ids[name]}})

    def direct_messages(self, user: str) -> list[Message]:
        """The messages posted to the direct message with ``user``."""
        channel = self.channel_ids.get(f"@{user}")
        return [m for m in self.messages.values() if m.channel == channel]

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
        broadcast = str(params.get("reply_broadcast", "")).lower() in ("true", "1")
        self.messages[ts] = Message(channel, ts, params.get("text", ""), _blocks(params), thread, broadcast)
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
