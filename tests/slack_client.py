"""Signed Slack requests as Slack sends them (slash commands, button clicks), and a response_url
endpoint that records what alertbot posts back."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from typing import Any

from aiohttp import web

from alertbot.slack.verify import sign
from tests.conftest import Harness

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


class ResponseUrl:
    """Where Slack's response_url points: records what alertbot posts there."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/respond", self._post)

    async def _post(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        return web.Response(text="ok")


def headers(body: bytes, *, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time()))
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(secret, stamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def command(h: Harness, text: str, *, user: str = "UALICE", response_url: str = "", ts: int | None = None) -> Any:
    body = urllib.parse.urlencode(
        {
            "command": "/alertbot",
            "text": text,
            "user_id": user,
            "user_name": user.lower(),
            "response_url": response_url,
            "trigger_id": uuid.uuid4().hex,
        }
    ).encode()
    resp = await h.client.post("/slack/commands", data=body, headers=headers(body, ts=ts))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def click(
    h: Harness,
    action: str,
    run_id: int,
    *,
    user: str,
    response_url: str,
    ts: int | None = None,
    block_id: str | None = None,
    message: tuple[str, str] | None = None,
) -> Any:
    """Click a button as Slack reports it over HTTP (see ``block_action``)."""
    payload = block_action(action, run_id, user=user, response_url=response_url, block_id=block_id, message=message)
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    resp = await h.client.post("/slack/interactions", data=body, headers=headers(body, ts=ts))
    assert resp.status == 200, await resp.text()
    return await resp.json()


def block_action(
    action: str,
    run_id: int,
    *,
    user: str,
    response_url: str = "",
    block_id: str | None = None,
    message: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A button click's ``block_actions`` payload: Approve / Cancel on a plan message sit in block
    ``run-ID`` (``block_id`` overrides, e.g. ``incident-N`` for an alert message); ``message``: the
    clicked message's (channel id, ts)."""
    if block_id is None:
        block_id = f"run-{run_id}" if action in ("runbook_approve", "runbook_cancel") else f"incident-{run_id}"
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user},
        "response_url": response_url,
        "trigger_id": uuid.uuid4().hex,
        "actions": [{"action_id": action, "block_id": block_id, "value": str(run_id)}],
    }
    if message is not None:
        payload["channel"] = {"id": message[0]}
        payload["message"] = {"ts": message[1]}
    return payload
