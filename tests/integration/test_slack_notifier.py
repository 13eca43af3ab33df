"""The Slack notifier posts; the dispatcher remembers what was posted, with the delivery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import aiohttp
from pytest_aiohttp import AiohttpServer

from alertbot.domain.incident import IncidentView
from alertbot.domain.models import Severity
from alertbot.errors import StoreUnavailable
from alertbot.notify.base import Destination, Notification, PostedMessage
from alertbot.notify.slack import SlackNotifier, make_client
from alertbot.store import slack_messages
from alertbot.store.engine import Store
from tests.conftest import SLACK_TOKEN, MakeHarness, Peers
from tests.helpers import wait_until

T = TypeVar("T")
NOW = datetime(2026, 11, 29, 21, 0, tzinfo=UTC)


class ReadOnlyStore:
    """A store with no Slack message on record that refuses every write."""

    def __init__(self) -> None:
        self.writes = 0

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        return None

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.writes += 1
        raise StoreUnavailable("the database refuses writes in this test")


def trigger(target: str) -> Notification:
    incident = IncidentView(
        id=7,
        fingerprint="f00dfeed",
        alertname="HighErrorRate",
        service="nutrition-service",
        namespace="ai-nutritionist",
        severity=Severity.CRITICAL,
        reason="error_rate 7% > critical threshold 5%",
        labels={"alertname": "HighErrorRate", "service": "nutrition-service"},
        annotations={"summary": "High 5xx error rate"},
        starts_at=NOW,
        ends_at=None,
        generator_url="",
    )
    return Notification.build(incident, "trigger", Destination("slack", target))


async def test_slack_send_writes_nothing_and_returns_the_posted_message(
    aiohttp_server: AiohttpServer, peers: Peers
) -> None:
    """A trigger is posted once and its channel and ts are returned; the notifier writes nothing, so a
    database failure after the post cannot turn a delivered message into a retry that posts it twice."""
    server = await aiohttp_server(peers.slack.app)
    store = ReadOnlyStore()
    async with aiohttp.ClientSession() as session:
        client = make_client(session, SLACK_TOKEN, str(server.make_url("/api/")))
        notifier = SlackNotifier(client, cast(Store, store), lambda: NOW)
        posted = await notifier.send(trigger("#alerts-critical"))
    (message,) = peers.slack.roots()
    assert posted == PostedMessage(7, "f00dfeed", "#alerts-critical", message.channel, message.ts)
    assert store.writes == 0


async def test_dispatcher_stores_the_posted_message_with_the_delivery(make_harness: MakeHarness, peers: Peers) -> None:
    """The message a trigger posted is on record once its delivery is, so the resolve edits it in place."""
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    await h.post_file("am-higherrorrate-nutrition-service-firing.json")
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="Slack message")
    (message,) = peers.slack.roots()

    async def recorded() -> bool:
        ref = await h.state.store.read(slack_messages.for_incident, 1, "#alerts-critical")
        return ref is not None and (ref.channel_id, ref.ts) == (message.channel, message.ts)

    await wait_until(recorded, within=10, what="Slack message reference stored")
