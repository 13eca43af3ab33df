"""The aiohttp application: state, lifecycle (``cleanup_ctx``) and ``serve``."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import aiohttp
import structlog
from aiohttp import web

from alertbot import __version__, incident_actions
from alertbot.bootstrap import kube_factory
from alertbot.changes.kube_api import KubeApi
from alertbot.changes.watch import ChangeRecorder, KubeWatch
from alertbot.context.graph import Graphs
from alertbot.context.thread import ContextPoster
from alertbot.notify.base import Notification, Notifier
from alertbot.notify.console import ConsoleNotifier
from alertbot.notify.dispatcher import OutboxDispatcher
from alertbot.notify.escalation import Escalator
from alertbot.notify.handoff import HandoffWatch
from alertbot.notify.links import MAX_LINKS, ContextLink, LinkMaker, context_links
from alertbot.notify.pagerduty import PagerDutyNotifier
from alertbot.notify.retry import RetryPolicy
from alertbot.notify.rota import Rota
from alertbot.notify.slack import AfterPage, SlackNotifier
from alertbot.notify.slack import make_client as make_slack_client
from alertbot.observability import Metrics
from alertbot.runbooks.k8s import Kubernetes
from alertbot.settings import Config, Secrets
from alertbot.slack.socket_mode import SocketModeLink
from alertbot.slack.verify import SlackVerifier
from alertbot.store import slack_requests
from alertbot.store.engine import Store, redact_url
from alertbot.store.health import StoreHealth
from alertbot.store.retention import RetentionJob, RetentionPolicy
from alertbot.web.console import setup_console
from alertbot.web.graph_api import graph_link
from alertbot.web.middlewares import RefusalLog, error_middleware
from alertbot.web.routes import setup_routes
from alertbot.web.runtime import Reloader, start_runtime
from alertbot.web.state import STATE, AppState, Clock

log = structlog.get_logger("alertbot.app")


READ_BUFFER_BYTES = 64 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_notifiers(
    config: Config,
    secrets: Secrets,
    *,
    session: aiohttp.ClientSession,
    store: Store,
    clock: Clock,
    console_stream: TextIO | None,
    readable_console: bool | None = None,
    links: LinkMaker | None = None,
    after_page: AfterPage | None = None,
) -> dict[str, Notifier]:
    """The notifier registry: console always; PagerDuty and Slack when their secret is present.
    ``links``: each page's deep links (the config's ``context``)."""
    notifiers: dict[str, Notifier] = {"console": ConsoleNotifier(console_stream, human=readable_console)}
    if secrets.pagerduty_routing_key is not None or secrets.pagerduty_routing_keys:
        notifiers["pagerduty"] = PagerDutyNotifier(
            session,
            config.pagerduty.events_url,
            secrets.pagerduty_routing_key,
            secrets.pagerduty_routing_keys,
            links=links,
        )
    if secrets.slack_bot_token is not None:
        client = make_slack_client(session, secrets.slack_bot_token.get_secret_value(), config.slack.api_url)
        notifiers["slack"] = SlackNotifier(client, store, clock, links=links, after_page=after_page)
    return notifiers


def _page_links(state: AppState, n: Notification) -> list[ContextLink]:
    """A page's links: its graph first, then the configured ones (which give up a place for it)."""
    graph = graph_link(state.config, state.secrets, n)
    return [*graph, *context_links(state.config.context, n, state.clock())[: MAX_LINKS - len(graph)]]


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    config = state.config
    url = config.storage.database_url()
    store = await Store.open(url, busy_timeout=config.storage.busy_timeout)
    log.info("store_opened", url=redact_url(url))
    # One client session for every outbound call; each send is bounded by outbox.send_timeout.
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=config.outbox.send_timeout.total_seconds()),
        headers={"User-Agent": f"alertbot/{__version__}"},
    )
    if config.server.external_url is not None and state.secrets.api_token is None:
        # Pages will link graphs under an address others reach, and nothing guards them.
        log.warning("external_url_without_api_token", external_url=config.server.external_url)
    # Read per graph, so a reload's new prometheus.url and context.lookback apply to the next one.
    state.graphs = Graphs(lambda: state.config.prometheus.url, lambda: state.config.context.lookback, state.clock)
    state.context_poster = _context_poster(state, session)
    if not state.notifiers:
        state.notifiers = build_notifiers(
            config,
            state.secrets,
            session=session,
            store=store,
            clock=state.clock,
            console_stream=state.console_stream,
            readable_console=state.readable_console,
            # Read at each send, so a reload's new `context` applies to the next page.
            links=lambda n: _page_links(state, n),
            after_page=state.context_poster.after_page if state.context_poster is not None else None,
        )
    rota = state.rota = Rota(store, lambda: state.config.oncall, state.clock)  # who is on call, calendars kept
    if "escalation" not in state.notifiers:
        state.notifiers = {**state.notifiers, "escalation": _escalator(state, store, rota)}
    log.info("notifiers", channels=list(state.notifiers))
    state.dispatcher = OutboxDispatcher(
        store,
        state.notifiers,
        metrics=state.metrics,
        clock=state.clock,
        retry=RetryPolicy(config.outbox.initial_backoff, config.outbox.max_backoff, config.outbox.give_up_after),
        send_timeout=config.outbox.send_timeout,
        poll_interval=config.outbox.poll_interval,
        scrub=state.secrets.scrub,
    )
    kube = state.kube or kube_factory(config)
    runtime = await start_runtime(config, state, store, session, kube, recover=True)
    await state.dispatcher.start()
    runtime.install(state)
    state.reloader = Reloader(
        state,
        state.config_path,
        lambda new: start_runtime(new, state, store, session, kube, recover=False),
        runtime,
    )
    watch = config.server.watch_config
    watcher = (
        asyncio.create_task(state.reloader.watch(watch.total_seconds()), name="config-watch")
        if watch is not None and state.config_path is not None
        else None
    )
    retention = _retention(config, store, state.clock)
    handoffs = HandoffWatch(store, state.notifiers, lambda: state.config.oncall, state.clock, rota)
    await handoffs.start()
    kube_watch = _kube_watch(config, kube, store, state.clock)
    if kube_watch is not None:
        kube_watch.start()
    state.readiness = StoreHealth(store)
    state._store = store
    socket_mode = _socket_mode(config, state, store)
    try:
        yield
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.wait({watcher})
        if socket_mode is not None:
            await socket_mode.stop()
        if retention is not None:
            await retention.stop()
        await handoffs.stop()
        if kube_watch is not None:
            await kube_watch.stop()
        state.readiness = None
        reloader, state.reloader = state.reloader, None
        state._pipeline = None
        # Commit what was accepted; let runbook runs finish — automations' and operators' at once,
        # so both fit in one grace period.
        await asyncio.gather(reloader.running.stop(), state.operator_runs.stop())
        await state.dispatcher.stop()  # stop sending; the rest waits durably in the outbox
        if state.context_poster is not None:
            await state.context_poster.stop()  # a page's context is best effort: not waited for
        await state.graphs.close()
        state._store = None
        await session.close()
        await store.close()
        log.info("stopped")


def _context_poster(state: AppState, session: aiohttp.ClientSession) -> ContextPoster | None:
    """With a Slack bot token, each page's graph and failing traces follow it into its thread."""
    token = state.secrets.slack_bot_token
    if token is None:
        return None
    return ContextPoster(
        make_slack_client(session, token.get_secret_value(), state.config.slack.api_url),
        session,
        lambda: state.config.context,
        state.clock,
        state.graphs,
    )


def _escalator(state: AppState, store: Store, rota: Rota) -> Escalator:
    """Steps of escalation policies, taken through the other channels."""
    return Escalator(
        store,
        dict(state.notifiers),
        lambda: state.config.oncall,
        state.clock,
        reopen=incident_actions.acknowledgement_expired,
        rota=rota,
    )


def _socket_mode(config: Config, state: AppState, store: Store) -> SocketModeLink | None:
    """Slash commands and buttons over Slack's Socket Mode, when an app-level token is configured."""
    token = state.secrets.slack_app_token
    if token is None:
        return None

    async def first_delivery(envelope_id: str) -> bool:
        now = state.clock()
        return await store.write(
            slack_requests.remember, f"socket:{envelope_id}"[:128], sent_at=now, forget_before=now - ENVELOPE_MEMORY
        )

    link = SocketModeLink(
        token.get_secret_value(),
        api_url=config.slack.api_url,
        handler=lambda: state.slack,
        first_delivery=first_delivery,
    )
    link.start()
    return link


# How long an envelope's id is remembered: Slack redelivers a late-acked envelope within seconds.
ENVELOPE_MEMORY = timedelta(minutes=10)


def _retention(config: Config, store: Store, clock: Clock) -> RetentionJob | None:
    """The background clean-up of old history (``retention``; null: keep everything)."""
    if config.retention is None:
        return None
    policy = RetentionPolicy(config.retention.incidents, config.retention.audit, config.retention.interval)
    job = RetentionJob(store, policy, clock=clock)
    job.start()
    return job


def _kube_watch(config: Config, kube: Callable[[], Kubernetes] | None, store: Store, clock: Clock) -> KubeWatch | None:
    policy = config.kubernetes.watch
    if policy is None:
        return None
    if kube is None:
        log.warning("watch_disabled", reason="kubernetes.watch is set but no Kubernetes configuration was found")
        return None
    log.info("watching", namespaces=policy.namespaces)
    return KubeWatch(
        KubeApi(kube().configuration),
        ChangeRecorder(store, clock, settle=policy.settle),
        policy.namespaces,
        resync=policy.resync,
        initial_backoff=policy.initial_backoff,
        max_backoff=policy.max_backoff,
    )


def create_app(
    config: Config,
    secrets: Secrets,
    *,
    clock: Clock = utcnow,
    console_stream: TextIO | None = None,
    notifiers: dict[str, Notifier] | None = None,
    kube: Callable[[], Kubernetes] | None = None,
    config_path: Path | None = None,
    readable_console: bool | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware(RefusalLog(clock))], client_max_size=config.webhook.max_body_bytes
    )
    app[STATE] = AppState(
        config=config,
        secrets=secrets,
        metrics=Metrics(),
        clock=clock,
        notifiers=dict(notifiers or {}),
        console_stream=console_stream,
        readable_console=readable_console,
        kube=kube,
        config_path=config_path,
        slack_verifier=SlackVerifier(secrets.slack_signing_secret),
        body_slots=asyncio.Semaphore(config.webhook.max_concurrent_bodies),
    )
    app.cleanup_ctx.append(_lifecycle)
    setup_routes(app)
    setup_console(app, secrets.api_token)
    return app


# Young-generation threshold once serving (CPython's default is 700): a webhook allocates a few
# thousand objects, so the default runs a collection several times per request.
GC_THRESHOLDS = (10_000, 10, 10)


def settle_heap() -> None:
    """Once started: move everything start-up built (modules, config, clients, compiled statements)
    out of the collector's sight, so a full collection walks only what requests allocate — full
    collections over the whole heap paused the process 70 to 110 ms every few seconds under load — and
    collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def app_runner(app: web.Application, config: Config) -> web.AppRunner:
    """The runner ``serve`` uses: bounded buffers per connection, and a header timeout."""
    # read_bufsize: how much of a request body aiohttp buffers per connection ahead of the handler
    # (its default, 256 KiB, is buffered twice over). Requests waiting for a body slot
    # (webhook.max_concurrent_bodies) hold at most this: 1,000 of them cost ~128 MiB, not 512.
    # keepalive_timeout: aiohttp closes a connection that has not sent a complete request head this
    # long after it opened or after its last response — webhook.header_timeout (a slow-header client
    # is cut off; an idle kept-alive connection is closed, and the client opens a new one).
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        read_bufsize=READ_BUFFER_BYTES,
        keepalive_timeout=config.webhook.header_timeout.total_seconds(),
        shutdown_timeout=config.server.shutdown_timeout.total_seconds(),
    )


async def serve(
    config: Config,
    secrets: Secrets,
    *,
    host: str,
    port: int,
    config_path: Path | None = None,
    readable_console: bool | None = None,
) -> None:
    """Run until SIGTERM/SIGINT, then drain: stop accepting, finish in-flight requests, commit.
    SIGHUP reloads the config file (web/runtime.py). ``readable_console``: None, readable on a terminal."""
    app = create_app(config, secrets, config_path=config_path, readable_console=readable_console)
    runner = app_runner(app, config)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        actual_port = sockets[0].getsockname()[1] if sockets else port
        settle_heap()
        log.info("listening", host=host, port=actual_port, url=f"http://{host}:{actual_port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        reloads: set[asyncio.Task[str | None]] = set()

        def reload() -> None:
            reloader = app[STATE].reloader
            if reloader is not None:
                task = asyncio.create_task(reloader.reload("SIGHUP"), name="reload")
                reloads.add(task)
                task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload)
        await stop.wait()
        log.info("draining")
    finally:
        await runner.cleanup()
