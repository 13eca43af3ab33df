"""Buttons: Ack / Resolve / Silence 1h and "Run …" on alert messages, Approve / Cancel on plans,
and "undo" on correlated changes. Every one goes through the policy layer.

A click on an alert message never replaces that message (its own buttons stay): the approval's plan
and state are posted in the alert's thread. A click on a plan message (block ``run-ID``) updates it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from alertbot.domain.text import escape_mrkdwn as mrkdwn
from alertbot.errors import AlertbotError
from alertbot.services import Services
from alertbot.services.approvals import Verdict, by_slack, incident_of
from alertbot.services.roles import Action, Actor, Forbidden
from alertbot.slack.common import Background, SlackMessage, ephemeral, not_an_incident_id, proposal_message
from alertbot.store import change_events, incidents, slack_messages
from alertbot.store.engine import Store
from alertbot.store.runbook_runs import RunRecord
from alertbot.store.schema import parse_id

log = structlog.get_logger("alertbot.slack")

# A correlated change's "undo" button plans this runbook with the change's target.
UNDO_RUNBOOKS = {
    "virtualservice": ("restore-last-good", "virtualservice"),
    "deployment": ("rollout-undo", "deployment"),
}
PlanForApproval = Callable[[str, str, str, list[str]], SlackMessage]


def _aside(answer: SlackMessage) -> SlackMessage:
    return {**answer, "replace_original": False}


class Interactions:
    def __init__(
        self,
        *,
        store: Store,
        services: Services,
        background: Background,
        client: AsyncWebClient | None,
        plan: PlanForApproval,
    ) -> None:
        self._store = store
        self._roles = services.roles
        self._silences = services.silences
        self._incidents = services.incidents
        self._approvals = services.approvals
        self._background = background
        self._client = client
        self._plan = plan

    async def handle(self, payload: Mapping[str, Any]) -> SlackMessage | None:
        actions = payload.get("actions")
        user_info = payload.get("user")
        user = str(user_info.get("id") or "") if isinstance(user_info, dict) else ""
        url = str(payload.get("response_url") or "")
        if payload.get("type") != "block_actions" or not isinstance(actions, list) or not actions or not user:
            return None
        action = actions[0]
        if not isinstance(action, dict):
            return ephemeral(":warning: malformed action")
        value = parse_id(str(action.get("value", "")))
        if value is None:
            return ephemeral(":warning: malformed action")
        on_plan = str(action.get("block_id") or "").startswith("run-")
        action_id = action.get("action_id")
        try:
            if action_id == "runbook_approve":
                return await self._approve(user, value, url, on_plan=on_plan, where=_message_of(payload))
            if action_id == "runbook_cancel":
                return await self._cancel(user, value, on_plan=on_plan)
            if action_id in ("incident_ack", "incident_resolve"):
                verb = Action.ACK if action_id == "incident_ack" else Action.RESOLVE
                return _aside(await self.incident_action(verb, str(value), user))
            if action_id == "incident_silence_1h":
                return _aside(await self._silence_incident(value, user))
            if action_id == "change_undo":
                return _aside(await self._plan_undo(value, user, url))
        except Forbidden as exc:
            return _aside(ephemeral(exc.message))
        except AlertbotError as exc:
            return _aside(ephemeral(f":warning: {mrkdwn(exc.message)}"))
        return None

    async def incident_action(self, action: Action, raw_id: str, user: str) -> SlackMessage:
        incident_id = parse_id(raw_id)
        if incident_id is None:
            return not_an_incident_id(raw_id)
        outcome = await self._incidents.act(Actor.slack(user), action, incident_id)
        verb = action.value
        if outcome.incident is None:
            if outcome.state == "missing":
                return ephemeral(f":warning: no incident {incident_id}")
            return ephemeral(f"incident {incident_id} is {outcome.state}: nothing to {verb}")
        incident = outcome.incident
        done = "acknowledged" if action is Action.ACK else "resolved"
        return {
            "response_type": "in_channel",
            "text": f"<@{user}> {done} incident {incident_id} ({mrkdwn(incident.alertname)} "
            f"{mrkdwn(incident.service)})",
        }

    async def _silence_incident(self, incident_id: int, user: str) -> SlackMessage:
        """Silence 1h: this alert (its alertname, service and namespace) for an hour."""
        silence = await self._silences.for_incident(Actor.slack(user), incident_id, timedelta(hours=1))
        shown = ", ".join(f"`{mrkdwn(str(m))}`" for m in silence.matchers)
        return {
            "response_type": "in_channel",
            "text": f":mute: <@{user}> silenced {shown} for 1h (silence {silence.id})",
        }

    async def _plan_undo(self, change_id: int, user: str, url: str) -> SlackMessage:
        """The button on an alert that started after a traffic shift or rollout: plan undoing it,
        posted with Approve / Cancel like any runbook request."""
        change = await self._store.read(change_events.get, change_id)
        if change is None or change.target.split("/", 1)[0] not in UNDO_RUNBOOKS:
            return ephemeral(f":warning: change {change_id} has nothing alertbot can undo")
        kind, name = change.target.split("/", 1)
        runbook, param = UNDO_RUNBOOKS[kind]
        return self._plan(user, url, runbook, [f"namespace={change.namespace}", f"{param}={name}"])

    async def _approve(
        self, user: str, run_id: int, url: str, *, on_plan: bool, where: tuple[str, str] | None
    ) -> SlackMessage:
        outcome = await self._approvals.approve(Actor.slack(user), run_id)
        record = outcome.record
        if outcome.verdict is Verdict.ALREADY:
            return _aside(
                ephemeral(f"you already approved run {run_id}; it needs {outcome.needed} different approvers")
            )
        if outcome.verdict is Verdict.OPERATOR_COUNTED:  # not for a Slack user; told as "already"
            return _aside(ephemeral(f"run {run_id} already has its approval from the API or the CLI"))
        if outcome.verdict is Verdict.NOT_PENDING:
            return _aside(ephemeral(f"run {run_id} is {outcome.state}: nothing to approve"))
        if outcome.verdict is Verdict.REPLANNED:
            assert outcome.proposal is not None
            if not record.plan:  # an automation's request, never planned: show it before anything runs
                lead = f"Automation `{mrkdwn(record.automation or '')}` asks to run"
            else:
                lead = f":warning: the target changed since run {run_id} was planned; re-planned, asks to run"
            message = proposal_message(outcome.proposal, self._roles.approvers, self._approvals.ttl, lead=lead)
            await self._post_in_thread(where, url, message)
            note = "the plan is posted in the thread: approve it there" if where else "approve the plan posted below"
            return _aside(ephemeral(f"run {run_id} is replaced by run {outcome.proposal.run_id}: {note}"))
        if outcome.verdict is Verdict.NEED_MORE:
            state = f":one: <@{user}> approved run {run_id} `{record.runbook}` (risk high): one more approver needed"
            return _aside({"response_type": "in_channel", "text": state})
        by = " and ".join(f"<@{a.removeprefix('slack:')}>" if by_slack(a) else mrkdwn(a) for a in outcome.approvers)
        running = f":hourglass: run {run_id} approved by {by}: running…"
        self._background.later(f"slack-run-{run_id}", self._execute(outcome.record, user, url, on_plan, where))
        if on_plan:
            return {"replace_original": True, "text": running}
        await self._post_in_thread(where, "", {"text": running})
        return _aside({"response_type": "ephemeral", "text": running})

    async def _execute(
        self, record: RunRecord, user: str, url: str, on_plan: bool, where: tuple[str, str] | None
    ) -> None:
        result = await self._approvals.execute(record)
        icon = ":white_check_mark:" if result.ok else ":x:"
        text = (
            f"{icon} run {record.id} `{record.runbook}` approved by <@{user}>: {result.status} — "
            f"{mrkdwn(result.message)}"
        )
        if on_plan:
            await self._background.respond(url, {"replace_original": True, "response_type": "in_channel", "text": text})
        else:
            await self._post_in_thread(where, url, {"text": text})

    async def _cancel(self, user: str, run_id: int, *, on_plan: bool) -> SlackMessage:
        cancelled = await self._approvals.cancel(Actor.slack(user), run_id)
        if cancelled is None:
            return _aside(ephemeral(f"run {run_id} is no longer pending"))
        text = f":no_entry_sign: run {run_id} `{cancelled.runbook}` cancelled by <@{user}>"
        return (
            {"replace_original": True, "text": text}
            if on_plan
            else _aside({"response_type": "in_channel", "text": text})
        )

    async def _post_in_thread(self, where: tuple[str, str] | None, url: str, message: SlackMessage) -> None:
        """Post in the thread of the clicked message; without a bot token or a message, via response_url
        as a new message (never replacing the original)."""
        if where is not None and self._client is not None:
            channel, ts = where
            try:
                await self._client.chat_postMessage(
                    channel=channel, thread_ts=ts, text=message["text"], blocks=message.get("blocks")
                )
                return
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("slack_thread_post_failed", error=type(exc).__name__)
        await self._background.respond(url, {**message, "replace_original": False, "response_type": "in_channel"})

    async def announce_cancelled(self, records: list[RunRecord]) -> None:
        """Tell each cancelled request's alert thread that its alert resolved (best effort)."""
        if self._client is None:
            return
        for record in records:
            incident_id = incident_of(record)
            incident = await self._store.read(incidents.get, incident_id) if incident_id is not None else None
            if incident is None:
                continue
            for dest in incident.destinations:
                if dest.get("channel") != "slack":
                    continue
                ref = await self._store.read(slack_messages.for_incident, incident.chain_id, str(dest.get("target")))
                if ref is not None:
                    text = f":no_entry_sign: run {record.id} `{record.runbook}` cancelled: its alert resolved"
                    await self._post_in_thread((ref.channel_id, ref.ts), "", {"text": text})


def _message_of(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    """The clicked message's channel and thread (its own ts, or the thread it is in)."""
    channel = payload.get("channel")
    message = payload.get("message")
    if not isinstance(channel, dict) or not isinstance(message, dict):
        return None
    ts = str(message.get("thread_ts") or message.get("ts") or "")
    channel_id = str(channel.get("id") or "")
    return (channel_id, ts) if channel_id and ts else None
