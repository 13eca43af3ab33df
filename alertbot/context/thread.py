"""What follows a page into its Slack thread: the failing traces of the alerting service (and, when
they cannot be had, a line saying why). It runs after the page is posted, in the background, so a
slow or failing Jaeger never delays the page itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from alertbot.context.jaeger import FailingTrace, Jaeger, JaegerUnavailable
from alertbot.domain.models import Severity
from alertbot.domain.text import escape_mrkdwn as e
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


class ContextPoster:
    """Posts an incident's context in its page's thread, one background task per page."""

    def __init__(
        self,
        client: AsyncWebClient,
        session: aiohttp.ClientSession,
        context: Callable[[], ContextConfig],
        clock: Callable[[], datetime],
    ) -> None:
        self._client = client
        self._session = session
        self._context = context  # read per page: a reload's new `context` applies to the next one
        self._clock = clock
        self._tasks = TaskSet("page_context_failed")

    def after_page(self, n: Notification, channel_id: str, ts: str) -> None:
        """The page ``n`` was posted as message ``ts`` in ``channel_id``: follow it up (in the background)."""
        if n.event != "trigger" or n.severity not in INVESTIGATED or n.storm is not None:
            return
        context = self._context()
        if context.jaeger is None:
            return
        self._tasks.start(f"page-context-{n.incident_id}", self._traces(context, n, channel_id, ts))

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
        try:
            await self._client.chat_postMessage(channel=channel_id, thread_ts=ts, text=text, unfurl_links=False)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("context_post_failed", incident_id=n.incident_id, error=type(exc).__name__)

    async def idle(self) -> None:
        """Wait for every follow-up started so far (tests)."""
        await self._tasks.idle()

    async def stop(self) -> None:
        await self._tasks.cancel()
