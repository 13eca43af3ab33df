"""What a reload replaces: the part of the running daemon built from the reloadable config.

    serve (app.py) keeps for the process's life: the store, the HTTP listener and its limits, the
        outbound session, the notifiers and the outbox dispatcher, the Kubernetes watch, retention
    Runtime (here), rebuilt by each reload: runbooks, the executor and automation runner, the policy
        services (roles, silence limits, approvals), Slack commands, the ingest pipeline (routes,
        inhibition, classification, storms, flapping, automations), the Watchdog check, the sweep

A reload (SIGHUP or ``POST /-/reload``) reads the config file and the runbooks again, builds a new
Runtime beside the running one, switches the handlers to it, and only then stops the old one: its
pipeline commits what it had accepted, its runbook runs finish. Nothing is refused meanwhile. A file
that does not validate, runbooks that do not load, or a change that only a restart can apply
(``RESTART_ONLY``) is refused with the reason, and the old config stays in force — as Alertmanager
and Prometheus reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
import structlog

from alertbot.bootstrap import make_executor, make_services
from alertbot.errors import AlertbotError, ConfigError
from alertbot.notify.slack import make_client as make_slack_client
from alertbot.pipeline import Pipeline, enabled_channels
from alertbot.runbooks.automations import AutomationRunner, automation_problem
from alertbot.runbooks.k8s import Kubernetes
from alertbot.runbooks.loader import load_runbooks
from alertbot.services import Services
from alertbot.settings import Config, load_config
from alertbot.slack.announce import SilenceAnnouncer
from alertbot.slack.commands import SlackCommands
from alertbot.slack.groups import GroupMembers
from alertbot.store.engine import Store
from alertbot.web.state import AppState

log = structlog.get_logger("alertbot.app")

# Sections (and Slack keys) that the process is built around: a change needs a restart.
RESTART_ONLY = ("storage", "server", "webhook", "api", "outbox", "pagerduty", "kubernetes", "retention")
SLACK_RESTART_ONLY = ("api_url", "bot_token_file", "signing_secret_file", "app_token_file")


def restart_needed(running: Config, new: Config) -> list[str]:
    """The restart-only keys that differ between the running config and a new one."""
    changed = [name for name in RESTART_ONLY if getattr(running, name) != getattr(new, name)]
    changed += [f"slack.{k}" for k in SLACK_RESTART_ONLY if getattr(running.slack, k) != getattr(new.slack, k)]
    return changed


async def every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run ``job`` every ``seconds`` until cancelled; a failing pass is logged and the next one runs."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except AlertbotError as exc:
            log.warning(f"{name}_failed", error=exc.message)
        except Exception as exc:  # keep going: the next pass may succeed
            log.error(f"{name}_failed", error=repr(exc))


def _heartbeat_every(max_interval: timedelta) -> float:
    """Look for an overdue Watchdog a few times per interval (between 1 s and 1 min apart)."""
    return min(max(max_interval.total_seconds() / 4, 1.0), 60.0)


@dataclass
class Runtime:
    config: Config
    services: Services
    slack: SlackCommands
    automations: AutomationRunner
    pipeline: Pipeline
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def install(self, state: AppState) -> None:
        """Point the handlers at this runtime (no await in between: one switch)."""
        state.config = self.config
        state.services = self.services
        state.slack = self.slack
        state.automations = self.automations
        state._pipeline = self.pipeline

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.pipeline.stop()  # commit what was accepted
        await self.slack.stop()
        await self.automations.stop()  # let runbook runs in progress finish (bounded)


async def start_runtime(
    config: Config,
    state: AppState,
    store: Store,
    session: aiohttp.ClientSession,
    kube: Callable[[], Kubernetes] | None,
    *,
    recover: bool,
) -> Runtime:
    """Build and start everything the reloadable config decides. ``recover``: at start-up, release the
    runbook runs a crash left running and carry out those it left queued (not on a reload: nothing
    crashed, and the old runner still owns its runs). Raises ConfigError when runbooks do not load."""
    dispatcher = state.dispatcher
    assert dispatcher is not None
    executor = make_executor(config, store, clock=state.clock, kube=kube, metrics=state.metrics)
    runbooks = await asyncio.to_thread(load_runbooks, config.runbooks.dir)
    problem = automation_problem(config.automations, runbooks, config.runbooks.dir)
    if problem is not None:  # its runs fail or are rejected (see Executor); check-config refuses it
        log.warning("automation_misconfigured", problem=problem)
    automations = AutomationRunner(store, executor, runbooks)
    token = state.secrets.slack_bot_token
    slack_client = make_slack_client(session, token.get_secret_value(), config.slack.api_url) if token else None
    services = make_services(
        config,
        store,
        executor,
        runbooks,
        clock=state.clock,
        members=GroupMembers(slack_client, state.clock),
        announce=SilenceAnnouncer(slack_client, config.slack.channels.critical),
        on_enqueued=dispatcher.wake,
        rota=state.rota,
    )
    slack = SlackCommands(
        store=store,
        services=services,
        clock=state.clock,
        session=session,
        client=slack_client,
        lookback=config.correlation.lookback,
    )
    pipeline = Pipeline(
        config,
        store,
        enabled_channels=enabled_channels(state.notifiers),
        metrics=state.metrics,
        clock=state.clock,
        dispatcher=dispatcher,
        run_automations=automations.submit,
    )
    pipeline.start()
    if recover:
        await executor.warm_up()
        await automations.start()
    runtime = Runtime(config, services, slack, automations, pipeline)
    if config.heartbeat is not None:
        interval = _heartbeat_every(config.heartbeat.max_interval)
        runtime.tasks.append(
            asyncio.create_task(every(interval, pipeline.check_heartbeat, "heartbeat_check"), name="heartbeat")
        )
    if any(a.mode == "approve" for a in config.automations):  # only they raise approvals a resolve cancels
        sweep_every = max(config.outbox.poll_interval.total_seconds(), 0.5)
        runtime.tasks.append(
            asyncio.create_task(every(sweep_every, slack.cancel_resolved_approvals, "approval_sweep"), name="sweep")
        )
    return runtime


class Reloader:
    """SIGHUP and ``POST /-/reload``: one reload at a time; the outcome in the log and in
    ``alertbot_config_last_reload_successful`` / ``…_success_timestamp_seconds``."""

    def __init__(
        self,
        state: AppState,
        config_path: Path | None,
        build: Callable[[Config], Awaitable[Runtime]],
        running: Runtime,
    ) -> None:
        self._state, self._path, self._build = state, config_path, build
        self.running = running
        self._lock = asyncio.Lock()
        self._record(True)

    async def reload(self, by: str) -> str | None:
        """Apply the config file as it is now; returns None, or why it was refused."""
        async with self._lock:
            try:
                new = await asyncio.to_thread(load_config, self._path)
                if changed := restart_needed(self.running.config, new):
                    raise ConfigError(f"{', '.join(changed)}: changed, which only a restart applies")
                runtime = await self._build(new)
            except AlertbotError as exc:
                self._record(False)
                log.error("config_reload_failed", by=by, reason=exc.message, kept="the running config")
                return exc.message
            old, self.running = self.running, runtime
            runtime.install(self._state)
            await old.stop()
            self._record(True)
            log.info("config_reloaded", by=by, file=str(self._path) if self._path else None)
            return None

    async def watch(self, interval: float) -> None:
        """Reload whenever the config file or a runbook file changes (a ConfigMap edit reaching a
        mounted directory, an operator's edit): looked at every ``interval`` seconds, until cancelled.
        A change that is refused is not retried until the files change again."""
        seen = await asyncio.to_thread(self._fingerprint)
        while True:
            await asyncio.sleep(interval)
            now = await asyncio.to_thread(self._fingerprint)
            if now != seen:
                seen = now
                await self.reload("watch")

    def _fingerprint(self) -> str:
        """A digest of what a reload reads: the config file and the runbook files."""
        digest = hashlib.sha256()
        files = [self._path] if self._path is not None else []
        files += sorted(self._state.config.runbooks.dir.glob("*.yaml"))
        for path in files:
            digest.update(str(path).encode() + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError as exc:  # gone or unreadable: that is a change too
                digest.update(type(exc).__name__.encode())
        return digest.hexdigest()

    def _record(self, ok: bool) -> None:
        metrics = self._state.metrics
        metrics.config_reload_successful.set(1 if ok else 0)
        if ok:
            metrics.config_reload_success_time.set(time.time())
