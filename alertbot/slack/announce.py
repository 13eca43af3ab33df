"""Every new silence is announced in the critical channel: who, matchers, until when."""

from __future__ import annotations

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from alertbot.domain.silence import Silence
from alertbot.domain.text import escape_mrkdwn as mrkdwn
from alertbot.services.roles import Actor, Source

log = structlog.get_logger("alertbot.slack")


def silence_text(silence: Silence, actor: Actor) -> str:
    shown = ", ".join(f"`{mrkdwn(str(m))}`" for m in silence.matchers)
    why = f" — {mrkdwn(silence.comment)}" if silence.comment else ""
    return (
        f":mute: {actor.mention if actor.source is Source.SLACK else mrkdwn(actor.audit)} silenced {shown} "
        f"until {silence.ends_at.strftime('%Y-%m-%d %H:%M')} UTC (silence {silence.id}){why}"
    )


class SilenceAnnouncer:
    """Posts to ``slack.channels.critical`` with the bot token; without one, the log line is all."""

    def __init__(self, client: AsyncWebClient | None, channel: str) -> None:
        self._client = client
        self._channel = channel

    async def __call__(self, silence: Silence, actor: Actor) -> None:
        if self._client is None:
            return
        try:
            await self._client.chat_postMessage(channel=self._channel, text=silence_text(silence, actor))
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("silence_announce_failed", silence_id=silence.id, error=type(exc).__name__)
