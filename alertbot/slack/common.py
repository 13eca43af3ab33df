"""What the Slack adapter's parts share: answers, mrkdwn escaping, tracked background work, and the
message that asks for an approval."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any, Literal, NotRequired, TypedDict

import aiohttp
import structlog

from alertbot.domain.jsontypes import SlackBlock
from alertbot.domain.parse import format_duration
from alertbot.domain.text import escape_mrkdwn as mrkdwn
from alertbot.services.approvals import Proposal
from alertbot.tasks import TaskSet

log = structlog.get_logger("alertbot.slack")


def mention(entry: str) -> str:
    """A role entry as Slack shows it: a user (``U…``/``W…``), a user group (``S…``), or anyone."""
    if entry == "*":
        return "anyone"
    return f"<!subteam^{entry}>" if entry.startswith("S") else f"<@{entry}>"


class SlackMessage(TypedDict):
    """An answer to a slash command or a click, or a message for a ``response_url`` or a thread."""

    text: str
    response_type: NotRequired[Literal["ephemeral", "in_channel"]]
    blocks: NotRequired[list[SlackBlock]]
    replace_original: NotRequired[bool]


def ephemeral(text: str) -> SlackMessage:
    return {"response_type": "ephemeral", "text": text}


def not_an_incident_id(raw_id: str) -> SlackMessage:
    return ephemeral(f":warning: `{mrkdwn(raw_id)}` is not an incident id (see `/alertbot status`)")


class Background:
    """Tracked background tasks (no bare ``create_task``): failures logged, cancelled on stop."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._tasks = TaskSet("slack_task_failed")

    def later(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.start(name, coro)

    async def idle(self) -> None:
        await self._tasks.idle()

    async def stop(self) -> None:
        await self._tasks.cancel()

    async def respond(self, url: str, message: SlackMessage) -> None:
        """Post to a command's or a click's ``response_url`` (best effort, logged)."""
        if not url:
            return
        try:
            async with self._session.post(url, json=message) as resp:
                if resp.status >= 300:
                    log.warning("slack_response_url_failed", status=resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack_response_url_failed", error=type(exc).__name__)


def _button(text: str, action_id: str, run_id: int, style: str) -> SlackBlock:
    return {
        "type": "button",
        "style": style,
        "action_id": action_id,
        "value": str(run_id),
        "text": {"type": "plain_text", "text": text},
    }


def proposal_message(proposal: Proposal, approvers: Sequence[str], ttl: timedelta, *, lead: str) -> SlackMessage:
    """Runbook, exact target, dry-run plan, Approve / Cancel: what approving will do, all of it shown."""
    run_id = proposal.run_id
    target = ", ".join(f"`{mrkdwn(t)}`" for t in proposal.targets) or "no cluster object"
    params = " ".join(f"`{mrkdwn(k)}={mrkdwn(v)}`" for k, v in proposal.params.items()) or "no params"
    text = (
        f"{lead} `{proposal.runbook.name}` on {target} (run {run_id}, risk {proposal.runbook.risk}; {params}). "
        "Approving applies exactly this plan:"
    )
    plan = "\n".join(f"• {mrkdwn(line)}" for line in proposal.lines) or "• (nothing to change)"
    who = ", ".join(mention(a) for a in approvers) or "nobody yet (slack.runbook_approvers)"
    return {
        "response_type": "in_channel",
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "text": {"type": "mrkdwn", "text": plan}},
            {
                "type": "actions",
                "block_id": f"run-{run_id}",
                "elements": [
                    _button("Approve", "runbook_approve", run_id, "primary"),
                    _button("Cancel", "runbook_cancel", run_id, "danger"),
                ],
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"Approvable by {who} for {format_duration(ttl)}."},
                ],
            },
        ],
    }
