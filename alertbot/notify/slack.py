"""Slack Web API via slack-sdk's AsyncWebClient on the shared aiohttp session.

trigger → ``chat.postMessage`` (Block Kit + text fallback); the channel and ``ts`` Slack answers are
returned, and the dispatcher stores them with the delivery. resolve → ``chat.update`` of that same
message, plus a threaded reply. A re-fire of the same alert within a day continues the earlier
message's thread instead of starting a new one.

Retries belong to the outbox (slack-sdk's own retry handlers are off): 429 (with ``Retry-After``),
5xx, Slack's transient errors and network failures are retryable; ``channel_not_found``,
``invalid_auth`` and the like fail at once with their reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from alertbot.errors import NotifyError, retryable_http_status
from alertbot.notify.base import Notification, PostedMessage
from alertbot.notify.links import ContextLink, LinkMaker
from alertbot.notify.slack_blocks import (
    ack_thread_text,
    alert_blocks,
    fallback_text,
    refire_thread_text,
    resolve_thread_text,
)
from alertbot.store import slack_messages
from alertbot.store.engine import Store

TRANSIENT_ERRORS = {
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
}
REFIRE_WINDOW = timedelta(hours=24)
T = TypeVar("T")


# Told of a new page's message (notification, channel id, ts): what follows it into its thread.
AfterPage = Callable[[Notification, str, str], None]


class SlackNotifier:
    channel = "slack"

    def __init__(
        self,
        client: AsyncWebClient,
        store: Store,
        clock: Callable[[], datetime],
        *,
        links: LinkMaker | None = None,
        after_page: AfterPage | None = None,
    ) -> None:
        self._links = links  # deep links for the message (context in docs/configuration.md)
        self._after_page = after_page  # told of each new page's message (its thread gets the context)
        self._client = client
        self._store = store
        self._clock = clock

    async def send(self, notification: Notification) -> PostedMessage | None:
        return await self._call(self._send, notification)

    async def _send(self, notification: Notification) -> PostedMessage | None:
        if notification.event == "resolve":
            await self._resolve(notification)
        elif notification.event == "acknowledge":
            await self._acknowledge(notification)
        else:  # trigger, or update: the message in place when there is one
            return await self._trigger(notification)
        return None

    async def _trigger(self, n: Notification) -> PostedMessage | None:
        """Post (or continue) the incident's message; returns it when it is new to this incident."""
        text = fallback_text(n, resolved=False)
        blocks = alert_blocks(n, resolved=False, links=self._context(n))
        own = await self._store.read(slack_messages.for_incident, n.incident_id, n.target)
        earlier = None
        if own is None and n.storm is None:
            earlier = await self._store.read(
                slack_messages.latest_for_fingerprint, n.fingerprint, n.target, self._clock() - REFIRE_WINDOW
            )
        if own is not None:
            # Already posted (a storm summary with a new count, or a retry after a partial failure).
            await self._client.chat_update(channel=own.channel_id, ts=own.ts, text=text, blocks=blocks)
            return None
        if earlier is not None and earlier.incident_id != n.incident_id:
            # The same alert fires again: bring its message back to firing and say so in its thread.
            await self._client.chat_update(channel=earlier.channel_id, ts=earlier.ts, text=text, blocks=blocks)
            await self._client.chat_postMessage(
                channel=earlier.channel_id,
                thread_ts=earlier.ts,
                text=refire_thread_text(n),
            )
            channel_id, ts = earlier.channel_id, earlier.ts
        else:
            resp = await self._client.chat_postMessage(channel=n.target, text=text, blocks=blocks)
            channel_id, ts = str(resp["channel"]), str(resp["ts"])
            if self._after_page is not None:
                self._after_page(n, channel_id, ts)
        return PostedMessage(n.incident_id, n.fingerprint, n.target, channel_id, ts)

    async def direct_message(self, user: str, n: Notification, heading: str) -> None:
        """The alert as a direct message to one person (an escalation step), with its buttons."""
        await self._call(self._direct_message, user, n, heading)

    async def _direct_message(self, user: str, n: Notification, heading: str) -> None:
        await self._post_with_heading(await self._dm_channel(user), n, heading)

    async def post_with_heading(self, channel: str, n: Notification, heading: str) -> None:
        """The alert posted to a channel under a heading (an escalation step's ``channel:``)."""
        await self._call(self._post_with_heading, channel, n, heading)

    async def _post_with_heading(self, channel: str, n: Notification, heading: str) -> None:
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": heading}}]
        blocks += alert_blocks(n, resolved=False, links=self._context(n))
        await self._client.chat_postMessage(
            channel=channel, text=f"{heading}\n{fallback_text(n, resolved=False)}", blocks=blocks
        )

    async def post_text(self, channel: str, text: str) -> None:
        """A plain message (mrkdwn the caller built from validated parts) in a channel."""
        await self._call(self._post_text, channel, text)

    async def _post_text(self, channel: str, text: str) -> None:
        await self._client.chat_postMessage(channel=channel, text=text)

    async def direct_text(self, user: str, text: str) -> None:
        """A plain message to one person."""
        await self._call(self._direct_text, user, text)

    async def _direct_text(self, user: str, text: str) -> None:
        await self._post_text(await self._dm_channel(user), text)

    async def _dm_channel(self, user: str) -> str:
        opened = await self._client.conversations_open(users=user)
        return str(opened["channel"]["id"])

    async def reply_in_thread(self, target: str, incident_id: int, text: str, *, broadcast: bool = False) -> None:
        """A line in the thread of the page's message in ``target`` (what escalation did); nothing
        when the page has no message there. ``text`` is mrkdwn the caller built from validated parts.
        ``broadcast``: also sent to the channel (Slack's ``reply_broadcast``)."""
        await self._call(self._reply_in_thread, target, incident_id, text, broadcast)

    async def _reply_in_thread(self, target: str, incident_id: int, text: str, broadcast: bool) -> None:
        own = await self._store.read(slack_messages.for_incident, incident_id, target)
        for _ in range(PAGE_WAIT_TRIES):  # a step due with the page may be taken while it is being posted
            if own is not None:
                break
            await asyncio.sleep(PAGE_WAIT_PAUSE)
            own = await self._store.read(slack_messages.for_incident, incident_id, target)
        if own is not None:
            await self._client.chat_postMessage(
                channel=own.channel_id, thread_ts=own.ts, text=text, reply_broadcast=broadcast
            )

    async def _call(self, method: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``method``, with Slack's errors as ``NotifyError`` (retryable or not)."""
        try:
            return await method(*args)
        except SlackApiError as exc:
            raise _notify_error(exc) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise NotifyError(f"Slack unreachable: {type(exc).__name__}: {exc}", retryable=True) from exc

    def _context(self, n: Notification) -> list[ContextLink]:
        return self._links(n) if self._links is not None else []

    async def _acknowledge(self, n: Notification) -> None:
        ref = await self._store.read(slack_messages.for_incident, n.incident_id, n.target)
        if ref is None:
            return  # nothing was posted for it here: nothing to mark
        await self._client.chat_update(
            channel=ref.channel_id,
            ts=ref.ts,
            text=fallback_text(n, resolved=False),
            blocks=alert_blocks(n, resolved=False, links=self._context(n)),
        )
        await self._client.chat_postMessage(channel=ref.channel_id, thread_ts=ref.ts, text=ack_thread_text(n))

    async def _resolve(self, n: Notification) -> None:
        text = fallback_text(n, resolved=True)
        blocks = alert_blocks(n, resolved=True, links=self._context(n))
        ref = await self._store.read(slack_messages.for_incident, n.incident_id, n.target)
        if ref is None:
            # The trigger never reached Slack (failed for good, or sent before this channel existed).
            await self._client.chat_postMessage(channel=n.target, text=text, blocks=blocks)
            return
        await self._client.chat_update(channel=ref.channel_id, ts=ref.ts, text=text, blocks=blocks)
        if n.storm is None:
            await self._client.chat_postMessage(
                channel=ref.channel_id, thread_ts=ref.ts, text=resolve_thread_text(n, text)
            )


PAGE_WAIT_TRIES, PAGE_WAIT_PAUSE = 20, 0.25  # a thread reply waits up to 5 s for its page's message


def _notify_error(exc: SlackApiError) -> NotifyError:
    response: Any = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    error = data.get("error", "") if isinstance(data, dict) else ""
    headers = getattr(response, "headers", None) or {}
    retry_after: float | None = None
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    if raw:
        try:
            retry_after = float(raw)
        except ValueError:
            retry_after = None
    retryable = retryable_http_status(status) or error in TRANSIENT_ERRORS
    return NotifyError(f"Slack {status}: {error or 'request failed'}", retryable=retryable, retry_after=retry_after)


def make_client(session: aiohttp.ClientSession, token: str, api_url: str) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=api_url, session=session, retry_handlers=[])
