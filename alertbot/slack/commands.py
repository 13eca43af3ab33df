"""``/alertbot`` and its interactive approvals.

Slack wants an answer within 3 seconds. Commands that are quick answer at once; runbook planning
answers "planning…" and posts the plan (with Approve / Cancel buttons) to ``response_url`` from a
tracked background task. Approve runs the planned runbook once — a second click, another approver
or an expired approval finds it no longer pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from alertbot import incident_actions
from alertbot.domain.matchers import Matcher, MatchOp
from alertbot.domain.parse import format_duration, parse_duration
from alertbot.errors import AlertbotError
from alertbot.runbooks.executor import Executor, RunResult
from alertbot.runbooks.model import Runbook
from alertbot.settings import SlackConfig
from alertbot.store import change_events, incidents, runbook_runs
from alertbot.store import silences as silence_repo
from alertbot.store.engine import Store
from alertbot.store.schema import parse_id
from alertbot.timeline import incident_timeline

log = structlog.get_logger("alertbot.slack")

APPROVAL_TTL = timedelta(minutes=15)
USAGE = """*`/alertbot` commands*
• `help` — this message
• `status [service]` — firing incidents by severity
• `ack ID` / `resolve ID` — acknowledge or resolve incident ID (PagerDuty and the Slack message follow)
• `silence name=value... DURATION` — e.g. `silence service=grocery alertname=HighLatencyP95 2h`
• `runbook list` — runbooks and their params
• `runbook run NAME [name=value...]` — plan it; Approve / Cancel buttons run or discard the plan
• `rollback NAMESPACE/VIRTUALSERVICE` — plan the emergency rollback of that VirtualService (all to stable)
• `rollback --to last-good NAMESPACE/VIRTUALSERVICE` — plan restoring its last-known-good weights
• `timeline ID` — incident ID's alerts, notifications, changes, runbook runs and acks, in order"""
# A correlated change's "undo" button plans this runbook with the change's target.
UNDO_RUNBOOKS = {
    "virtualservice": ("restore-last-good", "virtualservice"),
    "deployment": ("rollout-undo", "deployment"),
}
TIMELINE_LINES = 40
SEVERITY_ORDER = ("critical", "warning", "info")


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": text}


def _not_an_incident_id(raw_id: str) -> dict[str, Any]:
    return ephemeral(f":warning: `{raw_id}` is not an incident id (see `/alertbot status`)")


@dataclass(frozen=True)
class Command:
    user_id: str
    user_name: str
    text: str
    response_url: str


class SlackCommands:
    def __init__(
        self,
        *,
        store: Store,
        executor: Executor,
        runbooks: Mapping[str, Runbook],
        config: SlackConfig,
        clock: Callable[[], datetime],
        session: aiohttp.ClientSession,
        on_enqueued: Callable[[], None] = lambda: None,
        client: AsyncWebClient | None = None,
        lookback: timedelta = timedelta(minutes=30),
    ) -> None:
        self._lookback = lookback
        self._on_enqueued = on_enqueued
        self._client = client
        self._groups: dict[str, tuple[datetime, set[str]]] = {}
        self._store = store
        self._executor = executor
        self._runbooks = dict(runbooks)
        self._config = config
        self._clock = clock
        self._session = session
        self._tasks: set[asyncio.Task[None]] = set()

    # --- background work ------------------------------------------------------------------

    def _later(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("slack_task_failed", task=task.get_name(), error=repr(task.exception()))

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _respond(self, url: str, message: dict[str, Any]) -> None:
        if not url:
            return
        try:
            async with self._session.post(url, json=message) as resp:
                if resp.status >= 300:
                    log.warning("slack_response_url_failed", status=resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack_response_url_failed", error=type(exc).__name__)

    # --- commands -------------------------------------------------------------------------

    async def command(self, cmd: Command) -> dict[str, Any]:
        words = cmd.text.split()
        verb = words[0].lower() if words else "help"
        args = words[1:]
        try:
            if verb == "help":
                return ephemeral(USAGE)
            if verb == "status":
                return await self._status(args)
            if verb == "silence":
                return await self._silence(cmd, args)
            if verb in ("ack", "resolve") and len(args) == 1:
                return await self._incident_action(verb, args[0], cmd.user_id)
            if verb == "runbook" and args[:1] == ["list"]:
                return self._runbook_list()
            if verb == "runbook" and args[:1] == ["run"] and len(args) >= 2:
                return self._plan_for_approval(cmd, args[1], args[2:])
            if verb == "rollback" and len(args) == 1 and args[0].count("/") == 1:
                namespace, vs = args[0].split("/")
                return self._plan_for_approval(
                    cmd, "emergency-rollback", [f"namespace={namespace}", f"virtualservice={vs}"]
                )
            if verb == "rollback" and args[:2] == ["--to", "last-good"] and len(args) == 3 and args[2].count("/") == 1:
                namespace, vs = args[2].split("/")
                return self._plan_for_approval(
                    cmd, "restore-last-good", [f"namespace={namespace}", f"virtualservice={vs}"]
                )
            if verb == "timeline" and len(args) == 1:
                return await self._timeline(args[0])
        except AlertbotError as exc:
            return ephemeral(f":warning: {exc.message}")
        return ephemeral(f"I don't know `{cmd.text.strip() or verb}`.\n{USAGE}")

    async def _status(self, args: list[str]) -> dict[str, Any]:
        firing = await self._store.read(incidents.list_incidents, status="firing", limit=200)
        if args:
            firing = [i for i in firing if i.service == args[0]]
        if not firing:
            return ephemeral(":white_check_mark: nothing is firing" + (f" for {args[0]}" if args else ""))
        now = self._clock()
        lines = []
        for severity in SEVERITY_ORDER:
            group = [i for i in firing if i.severity.value == severity]
            if not group:
                continue
            lines.append(f"*{severity}* ({len(group)})")
            for incident in group[:15]:
                age = format_duration(now - incident.starts_at) if now > incident.starts_at else "0s"
                link = incident.annotations.get("runbook_url") or incident.generator_url
                suffix = f" <{link}|runbook>" if link.startswith(("http://", "https://")) else ""
                muted = f" _(muted: {incident.suppressed_by})_" if incident.suppressed_by else ""
                lines.append(f"• #{incident.id} {incident.alertname} {incident.service} — {age}{suffix}{muted}")
        return ephemeral("\n".join(lines))

    async def _incident_action(self, verb: str, raw_id: str, user: str) -> dict[str, Any]:
        incident_id = parse_id(raw_id)
        if incident_id is None:
            return _not_an_incident_id(raw_id)
        action = incident_actions.acknowledge if verb == "ack" else incident_actions.resolve
        incident = await self._store.write(action, incident_id, by=f"slack:{user}", now=self._clock())
        if incident is None:
            current = await self._store.read(incidents.get, incident_id)
            if current is None:
                return ephemeral(f":warning: no incident {incident_id}")
            state = "already acknowledged" if current.acked_by and current.status == "firing" else current.status
            return ephemeral(f"incident {incident_id} is {state}: nothing to {verb}")
        self._on_enqueued()
        done = "acknowledged" if verb == "ack" else "resolved"
        return {
            "response_type": "in_channel",
            "text": f"<@{user}> {done} incident {incident_id} ({incident.alertname} {incident.service})",
        }

    async def _timeline(self, raw_id: str) -> dict[str, Any]:
        incident_id = parse_id(raw_id)
        if incident_id is None:
            return _not_an_incident_id(raw_id)
        entries = await self._store.read(incident_timeline, incident_id, lookback=self._lookback, now=self._clock())
        if entries is None:
            return ephemeral(f":warning: no incident {incident_id}")
        lines = [f"`{e.at.strftime('%m-%d %H:%M:%S')}` *{e.kind}* {e.text}" for e in entries[-TIMELINE_LINES:]]
        cut = len(entries) - TIMELINE_LINES
        head = f"*Timeline of incident {incident_id}*" + (
            f" (latest {TIMELINE_LINES}; {cut} earlier in the API)" if cut > 0 else ""
        )
        return ephemeral("\n".join([head, *lines]))

    async def _silence(self, cmd: Command, args: list[str]) -> dict[str, Any]:
        if len(args) < 2:
            return ephemeral("usage: `silence name=value... DURATION`, e.g. `silence service=grocery 2h`")
        try:
            length = parse_duration(args[-1])
            matchers = [Matcher.parse(a) for a in args[:-1]]
        except ValueError as exc:
            return ephemeral(f":warning: {exc}")
        if length.total_seconds() <= 0:
            return ephemeral(":warning: the duration must be positive")
        now = self._clock()
        silence = await self._store.write(
            silence_repo.create,
            matchers,
            starts_at=now,
            ends_at=now + length,
            created_by=f"slack:{cmd.user_id}",
            comment=f"by {cmd.user_name}",
            now=now,
        )
        shown = ", ".join(f"`{m}`" for m in silence.matchers)
        return {
            "response_type": "in_channel",
            "text": f":mute: <@{cmd.user_id}> silenced {shown} for {format_duration(length)} (silence {silence.id})",
        }

    def _runbook_list(self) -> dict[str, Any]:
        if not self._runbooks:
            return ephemeral("no runbooks are loaded")
        lines = [
            f"• `{rb.name}` [{rb.risk}] {rb.description} — params: "
            + (", ".join(p.name + ("*" if p.required else f"={p.default or ''}") for p in rb.params) or "none")
            for rb in self._runbooks.values()
        ]
        return ephemeral("*Runbooks* (* = required)\n" + "\n".join(lines))

    def _plan_for_approval(self, cmd: Command, name: str, args: list[str]) -> dict[str, Any]:
        runbook = self._runbooks.get(name)
        if runbook is None:
            return ephemeral(f":warning: no runbook `{name}` (have: {', '.join(sorted(self._runbooks)) or 'none'})")
        params: dict[str, str] = {}
        for arg in args:
            key, sep, value = arg.partition("=")
            if not sep:
                return ephemeral(f":warning: `{arg}`: params are written name=value")
            params[key] = value
        try:
            resolved = runbook.resolve_params(params)
        except ValueError as exc:
            return ephemeral(f":warning: {exc}")
        self._later(f"slack-plan-{name}", self._plan_and_post(cmd, runbook, resolved))
        return ephemeral(f"Planning `{name}`… the plan will appear here with Approve / Cancel buttons.")

    async def _plan_and_post(self, cmd: Command, runbook: Runbook, params: dict[str, str]) -> None:
        try:
            plans = await self._executor.plan(runbook, params)
        except AlertbotError as exc:
            await self._respond(cmd.response_url, ephemeral(f":x: could not plan `{runbook.name}`: {exc.message}"))
            return
        run_id = await self._store.write(
            runbook_runs.queue,
            runbook=runbook.name,
            params=params,
            trigger=f"slack:{cmd.user_id}",
            automation="",
            target_key="",
            status="pending",
            now=self._clock(),
            plan=[p.to_json() for p in plans],
        )
        lines = [line for p in plans for line in p.lines]
        text = f"<@{cmd.user_id}> asks to run `{runbook.name}` (run {run_id}, risk {runbook.risk}):"
        await self._respond(
            cmd.response_url,
            {
                "response_type": "in_channel",
                "text": text,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(f"• {line}" for line in lines)}},
                    {
                        "type": "actions",
                        "block_id": f"run-{run_id}",
                        "elements": [
                            {
                                "type": "button",
                                "style": "primary",
                                "action_id": "runbook_approve",
                                "value": str(run_id),
                                "text": {"type": "plain_text", "text": "Approve"},
                            },
                            {
                                "type": "button",
                                "style": "danger",
                                "action_id": "runbook_cancel",
                                "value": str(run_id),
                                "text": {"type": "plain_text", "text": "Cancel"},
                            },
                        ],
                    },
                    {
                        "type": "context",
                        "elements": [
                            {
                                "type": "mrkdwn",
                                "text": (
                                    "Approvable by "
                                    f"{', '.join(f'<@{u}>' for u in self._config.runbook_approvers) or 'nobody yet'}"
                                    f" for {format_duration(APPROVAL_TTL)}."
                                ),
                            }
                        ],
                    },
                ],
            },
        )

    # --- interactions ---------------------------------------------------------------------

    async def interaction(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        actions = payload.get("actions")
        user_info = payload.get("user")
        user = str(user_info.get("id") or "") if isinstance(user_info, dict) else ""
        url = str(payload.get("response_url") or "")
        if payload.get("type") != "block_actions" or not isinstance(actions, list) or not actions or not user:
            return None
        action = actions[0]
        if not isinstance(action, dict):
            return ephemeral(":warning: malformed action")
        run_id = parse_id(str(action.get("value", "")))
        if run_id is None:
            return ephemeral(":warning: malformed action")
        action_id = action.get("action_id")
        if action_id == "runbook_approve":
            return await self._approve(user, run_id, url)
        if action_id == "runbook_cancel":
            return await self._cancel(user, run_id, url)
        if action_id in ("incident_ack", "incident_resolve"):
            answer = await self._incident_action("ack" if action_id == "incident_ack" else "resolve", str(run_id), user)
            return {**answer, "replace_original": False}
        if action_id == "incident_silence_1h":
            return await self._silence_incident(run_id, user)
        if action_id == "change_undo":
            return {**await self._plan_undo(run_id, user, url), "replace_original": False}
        return None

    async def _plan_undo(self, change_id: int, user: str, url: str) -> dict[str, Any]:
        """The button on an alert that started after a traffic shift or rollout: plan undoing it,
        posted with Approve / Cancel like any runbook request."""
        change = await self._store.read(change_events.get, change_id)
        if change is None or change.target.split("/", 1)[0] not in UNDO_RUNBOOKS:
            return ephemeral(f":warning: change {change_id} has nothing alertbot can undo")
        kind, name = change.target.split("/", 1)
        runbook, param = UNDO_RUNBOOKS[kind]
        return self._plan_for_approval(
            Command(user, "", "", url), runbook, [f"namespace={change.namespace}", f"{param}={name}"]
        )

    async def _silence_incident(self, incident_id: int, user: str) -> dict[str, Any]:
        """Silence 1h: this alert (its alertname, service and namespace) for an hour."""
        incident = await self._store.read(incidents.get, incident_id)
        if incident is None:
            return ephemeral(f":warning: no incident {incident_id}")
        matchers = [
            Matcher.create(name, MatchOp.EQ, incident.labels[name])
            for name in ("alertname", "service", "namespace")
            if incident.labels.get(name)
        ]
        if not matchers:
            return ephemeral(":warning: this alert has no alertname, service or namespace label to silence on")
        now = self._clock()
        silence = await self._store.write(
            silence_repo.create,
            matchers,
            starts_at=now,
            ends_at=now + timedelta(hours=1),
            created_by=f"slack:{user}",
            comment=f"Silence 1h on incident {incident_id}",
            now=now,
        )
        shown = ", ".join(f"`{m}`" for m in silence.matchers)
        return {
            "response_type": "in_channel",
            "replace_original": False,
            "text": f":mute: <@{user}> silenced {shown} for 1h (silence {silence.id})",
        }

    async def _may_approve(self, user: str) -> bool:
        """Listed by user ID (U…/W…), or a member of a listed user group (S…, asked of Slack, cached 60 s)."""
        if user in self._config.runbook_approvers:
            return True
        for group in (g for g in self._config.runbook_approvers if g.startswith("S")):
            if user in await self._group_members(group):
                return True
        return False

    async def _group_members(self, group: str) -> set[str]:
        cached = self._groups.get(group)
        now = self._clock()
        if cached is not None and now - cached[0] < timedelta(seconds=60):
            return cached[1]
        if self._client is None:
            log.warning("slack_group_unresolvable", group=group, reason="no ALERTBOT_SLACK_BOT_TOKEN")
            return set()
        try:
            resp = await self._client.usergroups_users_list(usergroup=group)
            users: list[Any] = resp.get("users") or []
            members = {str(u) for u in users}
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack_group_unresolvable", group=group, error=type(exc).__name__)
            return cached[1] if cached is not None else set()
        self._groups[group] = (now, members)
        return members

    async def _approve(self, user: str, run_id: int, url: str) -> dict[str, Any] | None:
        record = await self._store.read(runbook_runs.get, run_id)
        if record is None:
            return ephemeral(f":warning: no run {run_id}")
        if not await self._may_approve(user):
            return {
                **ephemeral(f":no_entry: <@{user}> may not approve runbook runs (slack.runbook_approvers)"),
                "replace_original": False,
            }
        if record.trigger == f"slack:{user}" and not self._config.allow_self_approval:
            return {
                **ephemeral(
                    ":no_entry: you asked for this run; someone else must approve it (slack.allow_self_approval is off)"
                ),
                "replace_original": False,
            }
        runbook = self._runbooks.get(record.runbook)
        if runbook is None:
            return ephemeral(f":x: runbook {record.runbook} is no longer loaded")
        needed = 2 if runbook.risk == "high" else 1  # the two-person rule
        if f"slack:{user}" in (record.approvals or []):
            return {
                **ephemeral(f"you already approved run {run_id}; it needs {needed} different approvers"),
                "replace_original": False,
            }
        now = self._clock()
        counted = await self._store.write(
            runbook_runs.add_approval,
            run_id,
            by=f"slack:{user}",
            needed=needed,
            now=now,
            requested_after=now - APPROVAL_TTL,
        )
        if counted is None:
            current = await self._store.read(runbook_runs.get, run_id)
            state = current.status if current else "gone"
            return {**ephemeral(f"run {run_id} is {state}: nothing to approve"), "replace_original": False}
        status, approvers = counted
        if status == "pending":
            return {
                "response_type": "in_channel",
                "replace_original": False,
                "text": f":one: <@{user}> approved run {run_id} `{record.runbook}` (risk high): one more "
                "approver needed",
            }
        approved = await self._store.read(runbook_runs.get, run_id)
        assert approved is not None
        self._later(f"slack-run-{run_id}", self._execute(approved, runbook, user, url))
        by = " and ".join(f"<@{a.removeprefix('slack:')}>" for a in approvers)
        return {"replace_original": True, "text": f":hourglass: run {run_id} approved by {by}: running…"}

    async def _execute(self, record: runbook_runs.RunRecord, runbook: Runbook, user: str, url: str) -> None:
        result: RunResult = await self._executor.run(
            runbook, record.params, execute=True, trigger=record.trigger, run_id=record.id
        )
        icon = ":white_check_mark:" if result.ok else ":x:"
        await self._respond(
            url,
            {
                "replace_original": True,
                "response_type": "in_channel",
                "text": f"{icon} run {record.id} `{record.runbook}` approved by <@{user}>: "
                f"{result.status} — {result.message}",
            },
        )

    async def _cancel(self, user: str, run_id: int, url: str) -> dict[str, Any] | None:
        record = await self._store.read(runbook_runs.get, run_id)
        if record is None:
            return ephemeral(f":warning: no run {run_id}")
        if record.trigger != f"slack:{user}" and not await self._may_approve(user):
            return {**ephemeral(":no_entry: only the requester or an approver may cancel"), "replace_original": False}
        now = self._clock()
        cancelled = await self._store.write(
            runbook_runs.cancel_pending, run_id, by=f"slack:{user}", now=now, requested_after=now - APPROVAL_TTL
        )
        if cancelled is None:
            return {**ephemeral(f"run {run_id} is no longer pending"), "replace_original": False}
        return {
            "replace_original": True,
            "text": f":no_entry_sign: run {run_id} `{record.runbook}` cancelled by <@{user}>",
        }


def parse_interaction(form_payload: str) -> dict[str, Any]:
    data = json.loads(form_payload)
    if not isinstance(data, dict):
        raise ValueError("payload must be a JSON object")
    return data
