"""What follows a page into its Slack thread: the graph of the alert's query (alertbot/context/graph.py)
and the failing traces of the alerting service — and, when either cannot be had, a line saying why.
Each runs after the page is posted, in the background, so a slow or failing Prometheus or Jaeger
never delays the page itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from alertbot.context.graph import Graphs, GraphSubject, NoGraph, graph_title
from alertbot.context.jaeger import FailingTrace, Jaeger, JaegerUnavailable
from alertbot.domain.models import Severity
from alertbot.domain.text import escape_mrkdwn as e
from alertbot.errors import PrometheusError
from alertbot.notify.base import Notification
from alertbot.notify.links import link_values, render
from alertbot.settings_sections import ContextConfig
from alertbot.tasks import TaskSet

log = structlog.get_logger("alertbot.context")

# Pages that get their context: a warning or a critical (an info is not investigated at 3 a.m.).
INVESTIGATED = frozenset({Severity.CRITICAL, Severity.WARNING})


def traces_text(service: str, traces: list[FailingTrace], start: datetime, end: datetime) -> str:
    window = f"{start:%H:%M} and {end:%H:%M} UTC"
    if not traces:
        return f":mag: No failing traces of `{e(service)}` in Jaeger between {window}."
    lines = [
        f"• `{e(t.operation)}` {t.duration_ms / 1000:.2f} s at {t.started_at:%H:%M:%S} — {e(t.error)}"
        f" · <{t.url}|{t.trace_id[:12]}>"
        for t in traces
    ]
    return f":mag: *Failing traces of `{e(service)}`* (Jaeger, between {window})\n" + "\n".join(lines)


def graph_subject(n: Notification) -> GraphSubject:
    return GraphSubject(
        n.incident_id,
        graph_title(n.alertname, n.service, n.severity),
        n.labels,
        n.annotations,
        n.generator_url,
        n.starts_at,
        None,  # a page is of a firing alert (its endsAt, when set, is only Alertmanager's guess)
    )


class ContextPoster:
    """Posts an incident's context in its page's thread, one background task per page."""

    def __init__(
        self,
        client: AsyncWebClient,
        session: aiohttp.ClientSession,
        context: Callable[[], ContextConfig],
        clock: Callable[[], datetime],
        graphs: Graphs | None = None,
    ) -> None:
        self._client = client
        self._session = session
        self._context = context  # read per page: a reload's new `context` applies to the next one
        self._clock = clock
        self._graphs = graphs
        self._tasks = TaskSet("page_context_failed")

    def after_page(self, n: Notification, channel_id: str, ts: str) -> None:
        """The page ``n`` was posted as message ``ts`` in ``channel_id``: follow it up (in the background)."""
        if n.event != "trigger" or n.severity not in INVESTIGATED or n.storm is not None:
            return
        subject = graph_subject(n)
        if self._graphs is not None and self._graphs.can_draw(subject):
            self._tasks.start(f"page-graph-{n.incident_id}", self._graph(self._graphs, subject, channel_id, ts))
        context = self._context()
        if context.jaeger is not None:
            self._tasks.start(f"page-traces-{n.incident_id}", self._traces(context, n, channel_id, ts))

    async def _graph(self, graphs: Graphs, subject: GraphSubject, channel_id: str, ts: str) -> None:
        try:
            graph = await graphs.graph(subject)
        except (NoGraph, PrometheusError) as exc:
            log.warning("graph_unavailable", incident_id=subject.incident_id, error=exc.message)
            await self._say(subject.incident_id, channel_id, ts, f":warning: No graph: {e(exc.message)}")
            return
        title = f"{subject.title}, {graph.start:%H:%M} to {graph.end:%H:%M} UTC"
        try:
            await self._client.files_upload_v2(
                content=graph.png,
                filename=f"incident-{subject.incident_id}.png",
                title=title,
                alt_txt=f"{graph.query.expr} from {graph.start:%H:%M} to {graph.end:%H:%M} UTC"[:1000],  # Slack's limit
                channel=channel_id,
                thread_ts=ts,
            )
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:  # the upload's errors too
            log.warning("graph_upload_failed", incident_id=subject.incident_id, error=type(exc).__name__)

    async def _traces(self, context: ContextConfig, n: Notification, channel_id: str, ts: str) -> None:
        assert context.jaeger is not None
        now = self._clock()
        start = n.starts_at - context.lookback
        service = render(context.jaeger.service, n, link_values(n, now, context.lookback), url=False)
        if not service:
            return  # the alert names no service Jaeger would know
        try:
            traces = await Jaeger(self._session, context.jaeger.url).failing_traces(
                service, start, now, near=n.starts_at
            )
            text = traces_text(service, traces, start, now)
        except JaegerUnavailable as exc:
            log.warning("jaeger_unavailable", incident_id=n.incident_id, error=exc.message)
            text = f":warning: Failing traces of `{e(service)}` could not be read: {e(exc.message)}"
        await self._say(n.incident_id, channel_id, ts, text)

    async def _say(self, incident_id: int, channel_id: str, ts: str, text: str) -> None:
        try:
            await self._client.chat_postMessage(channel=channel_id, thread_ts=ts, text=text, unfurl_links=False)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("context_post_failed", incident_id=incident_id, error=type(exc).__name__)

    async def idle(self) -> None:
        """Wait for every follow-up started so far (tests)."""
        await self._tasks.idle()

    async def stop(self) -> None:
        await self._tasks.cancel()
