from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import structlog
import structlog.testing
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient, AiohttpServer

from alertbot.notify.base import Notifier
from alertbot.notify.dispatcher import OutboxDispatcher
from alertbot.runbooks.automations import AutomationRunner
from alertbot.runbooks.k8s import Kubernetes, api_client
from alertbot.settings import Config, Secrets, parse_config
from alertbot.slack.commands import SlackCommands
from alertbot.web.app import create_app, utcnow
from alertbot.web.state import STATE, AppState, Clock
from tests import postgres
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.helpers import ConsoleSink, payload_bytes
from tests.postgres import PostgresServer


@dataclass
class Harness:
    client: TestClient[web.Request, web.Application]
    console: ConsoleSink
    config: Config

    @property
    def state(self) -> AppState:
        return self.client.app[STATE]

    @property
    def dispatcher(self) -> OutboxDispatcher:
        """The outbox dispatcher, started with the app."""
        assert self.state.dispatcher is not None, "the app has not started"
        return self.state.dispatcher

    @property
    def slack(self) -> SlackCommands:
        """Slack's commands and buttons (the app started with Slack configured)."""
        assert self.state.slack is not None, "Slack is not configured"
        return self.state.slack

    @property
    def automations(self) -> AutomationRunner:
        """The automation runner (the app started with automations configured)."""
        assert self.state.automations is not None, "no automations are configured"
        return self.state.automations

    async def post_payload(
        self, body: bytes | str, *, token: str | None = None, content_type: str = "application/json"
    ) -> ClientResponse:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.post("/webhook/alertmanager", data=body, headers=headers)

    async def post_file(
        self, name: str, *, token: str | None = None, content_type: str = "application/json"
    ) -> ClientResponse:
        return await self.post_payload(payload_bytes(name), token=token, content_type=content_type)


class MakeHarness(Protocol):
    """The ``make_harness`` fixture: starts the app with this config (merged over the test's store)."""

    def __call__(
        self,
        config: dict[str, Any] | None = None,
        *,
        secret_values: dict[str, str] | None = None,
        notifiers: dict[str, Notifier] | None = None,
        console: ConsoleSink | None = None,
        kube: Callable[[], Kubernetes] | None = None,
        clock: Clock | None = None,
        named_pagerduty_keys: dict[str, str] | None = None,
    ) -> Awaitable[Harness]: ...


def secrets(**values: str) -> Secrets:
    return Secrets(**{k: SecretStr(v) for k, v in values.items()})


ROOT = Path(__file__).resolve().parents[1]
INTERNAL_ERRORS = {
    "outbox_loop_error",
    "unhandled_error",
    "ingest_failed",
    "notifier_crashed",
    "handoff_check_crashed",
    "automation_run_crashed",
}


@pytest.fixture(autouse=True)
def no_internal_errors() -> Iterator[None]:
    """Fails any test during which alertbot logged an internal error, even if the behaviour under
    test happened to survive it."""
    with structlog.testing.capture_logs() as logs:
        yield
    errors = [entry for entry in logs if entry.get("event") in INTERNAL_ERRORS]
    assert errors == [], errors


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (each test gets its own database on it)."""
    if not postgres.available():
        if os.environ.get("ALERTBOT_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required (ALERTBOT_REQUIRE_POSTGRES) but its binaries are not installed")
        pytest.skip("PostgreSQL binaries not installed (apt install postgresql)")
    server = PostgresServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test through the app runs on both stores: SQLite (the default) and a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/alertbot.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
async def make_harness(aiohttp_client: AiohttpClient, db_url: str) -> MakeHarness:
    """Start the real app (real SQLite store, real dispatcher) on a test server."""

    async def make(
        config: dict[str, Any] | None = None,
        *,
        secret_values: dict[str, str] | None = None,
        notifiers: dict[str, Notifier] | None = None,
        console: ConsoleSink | None = None,
        kube: Callable[[], Kubernetes] | None = None,
        clock: Clock | None = None,
        named_pagerduty_keys: dict[str, str] | None = None,
    ) -> Harness:
        data = {"storage": {"url": db_url}, "runbooks": {"dir": str(ROOT / "runbooks")}, **(config or {})}
        cfg = parse_config(data)
        sink = console or ConsoleSink()
        resolved = secrets(**(secret_values or {}))
        if named_pagerduty_keys:
            resolved = resolved.model_copy(
                update={"pagerduty_routing_keys": {k: SecretStr(v) for k, v in named_pagerduty_keys.items()}}
            )
        app = create_app(cfg, resolved, clock=clock or utcnow, console_stream=sink, notifiers=notifiers, kube=kube)
        client = await aiohttp_client(app)
        return Harness(client, sink, cfg)

    return make


PD_KEY = "R0UT1NGKEYfake0000000000000000001"
SLACK_TOKEN = "xoxb-fake-bot-token"


@dataclass
class Peers:
    """Fake PagerDuty and Slack servers on 127.0.0.1, and the config + secrets that point alertbot at them."""

    pagerduty: FakePagerDuty
    slack: FakeSlack
    config: dict[str, Any]
    secret_values: dict[str, str]


@pytest.fixture
async def peers(aiohttp_server: AiohttpServer) -> Peers:
    pagerduty = FakePagerDuty(PD_KEY)
    slack = FakeSlack(SLACK_TOKEN, ["#alerts-critical", "#alerts", "#alerts-info"])
    pd_server = await aiohttp_server(pagerduty.app)
    slack_server = await aiohttp_server(slack.app)
    config = {
        "pagerduty": {"events_url": str(pd_server.make_url("/v2/enqueue"))},
        # Who may ack, resolve and silence from Slack (empty would be nobody).
        "slack": {"api_url": str(slack_server.make_url("/api/")), "responders": ["UALICE", "UBOB"]},
        "outbox": {"initial_backoff": "20ms", "max_backoff": "200ms", "poll_interval": "50ms", "send_timeout": "2s"},
    }
    return Peers(pagerduty, slack, config, {"pagerduty_routing_key": PD_KEY, "slack_bot_token": SLACK_TOKEN})


@pytest.fixture
async def k8s(aiohttp_server: AiohttpServer, tmp_path: Path) -> tuple[FakeKubernetes, Callable[[], Kubernetes]]:
    """A fake Kubernetes API holding the canary VirtualService (stable 90 / canary 10), and a client
    factory for it (what `kubernetes.kubeconfig` would give)."""
    fake = FakeKubernetes()
    fake.add_virtualservice(seed_canary())
    server = await aiohttp_server(fake.app)
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig(str(server.make_url(""))))
    return fake, lambda: Kubernetes(api_client(path))
