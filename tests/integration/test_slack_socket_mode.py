"""Socket Mode: slash commands and buttons reach the same handlers over a WebSocket alertbot opens
to Slack (tests/fakes/slack_socket.py speaks the envelope / ack protocol), with no signing secret
and nothing of alertbot reachable from outside."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from tests.conftest import SLACK_TOKEN, Harness, MakeHarness
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_socket import FakeSocketMode
from tests.helpers import wait_until
from tests.slack_client import block_action

APP_TOKEN = "xapp-1-A0FAKE-0000-fake"


@dataclass
class SocketEnv:
    slack: FakeSlack
    socket: FakeSocketMode
    harness: Harness


@pytest.fixture
async def socket_env(make_harness: MakeHarness, aiohttp_server: AiohttpServer) -> AsyncIterator[SocketEnv]:
    slack = FakeSlack(SLACK_TOKEN, ["#alerts-critical", "#alerts", "#alerts-info"])
    socket = FakeSocketMode(slack.app, APP_TOKEN)
    server = await aiohttp_server(slack.app)
    h = await make_harness(
        {"slack": {"api_url": str(server.make_url("/api/")), "responders": ["UALICE"]}},
        secret_values={"slack_bot_token": SLACK_TOKEN, "slack_app_token": APP_TOKEN},
    )
    await asyncio.wait_for(socket.connected.wait(), timeout=10)
    yield SocketEnv(slack, socket, h)
    await h.client.close()  # alertbot closes its socket before the fake Slack goes away


def slash(text: str, user: str = "UALICE") -> dict[str, Any]:
    return {
        "command": "/alertbot",
        "text": text,
        "user_id": user,
        "user_name": user.lower(),
        "response_url": "",
        "trigger_id": uuid.uuid4().hex,
        "team_id": "T0FAKE",
        "channel_id": "C00000001",
    }


async def test_a_slash_command_is_answered_in_its_ack(socket_env: SocketEnv) -> None:
    ack = await socket_env.socket.send("slash_commands", slash("help"))
    assert "`/alertbot` commands" in ack["payload"]["text"]
    refused = await socket_env.socket.send("slash_commands", slash("silence service=grocery 1h", user="UMALLORY"))
    assert "may not" in refused["payload"]["text"]


async def test_a_redelivered_envelope_is_acted_on_once(socket_env: SocketEnv) -> None:
    """Slack sends an envelope again when its ack is late: acknowledged again, not acted on twice."""
    for _ in range(2):
        ack = await socket_env.socket.send("slash_commands", slash("silence service=grocery 1h"), envelope_id="E1")
        assert ack["envelope_id"] == "E1"
    silences = await (await socket_env.harness.client.get("/api/v1/silences")).json()
    assert [s["matchers"] for s in silences] == [['service="grocery"']]


async def test_buttons_work_over_the_socket_and_http_stays_closed(socket_env: SocketEnv) -> None:
    h = socket_env.harness
    await h.post_file("am-servicedown-recipe-service-firing.json")
    await wait_until(lambda: len(socket_env.slack.roots()) == 1, what="Slack message")
    ack = await socket_env.socket.send(
        "interactive", block_action("incident_ack", 1, user="UALICE"), accepts_response_payload=False
    )
    assert "payload" not in ack or not ack["payload"]
    timeline = await (await h.client.get("/api/v1/incidents/1/timeline")).json()
    assert [e["text"] for e in timeline if e["kind"] == "ack"] == ["acknowledged by slack:UALICE"]
    # Without a signing secret the HTTP endpoints refuse everything: Socket Mode needs no public endpoint.
    assert (await h.client.post("/slack/commands", data=b"command=%2Falertbot&text=help")).status == 401
