"""What the handlers share: one ``AppState`` per application, under ``STATE``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from aiohttp import web

from alertbot.context.graph import Graphs
from alertbot.context.thread import ContextPoster
from alertbot.errors import StoreUnavailable
from alertbot.notify.base import Notifier
from alertbot.notify.dispatcher import OutboxDispatcher
from alertbot.notify.rota import Rota
from alertbot.observability import Metrics
from alertbot.pipeline import Pipeline
from alertbot.runbooks.automations import AutomationRunner
from alertbot.runbooks.k8s import Kubernetes
from alertbot.services import Services
from alertbot.services.runs import OperatorRuns
from alertbot.settings import Config, Secrets
from alertbot.slack.commands import SlackCommands
from alertbot.slack.verify import SlackVerifier
from alertbot.store.engine import Store
from alertbot.store.health import StoreHealth

if TYPE_CHECKING:
    from alertbot.web.runtime import Reloader

Clock = Callable[[], datetime]


@dataclass
class AppState:
    config: Config
    secrets: Secrets
    metrics: Metrics
    clock: Clock
    notifiers: dict[str, Notifier]
    console_stream: TextIO | None = None
    readable_console: bool | None = None  # console notifier: None readable on a terminal, else JSON
    _store: Store | None = None
    _pipeline: Pipeline | None = None
    dispatcher: OutboxDispatcher | None = None
    automations: AutomationRunner | None = None
    slack: SlackCommands | None = None
    services: Services | None = None
    slack_verifier: SlackVerifier = field(default_factory=lambda: SlackVerifier(None))
    kube: Callable[[], Kubernetes] | None = None
    body_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(32))
    readiness: StoreHealth | None = None  # can the store commit? (/readyz)
    config_path: Path | None = None  # the file a reload reads again
    reloader: Reloader | None = None  # SIGHUP, POST /-/reload (web/runtime.py)
    operator_runs: OperatorRuns = field(default_factory=OperatorRuns)  # through reloads, until shutdown
    console_hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))  # password checks at once
    rota: Rota | None = None  # who is on call (calendars kept), shared by escalation, hand-offs, /alertbot oncall
    context_poster: ContextPoster | None = None  # a page's graph and failing traces in its Slack thread
    graphs: Graphs | None = None  # incidents' graphs, drawn and cached (alertbot/context/graph.py)

    @property
    def started(self) -> bool:
        return self._store is not None and self._pipeline is not None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise StoreUnavailable("alertbot is starting")
        return self._store

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            raise StoreUnavailable("alertbot is starting")
        return self._pipeline


STATE = web.AppKey("state", AppState)
