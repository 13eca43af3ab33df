"""``/alertbot``: a thin adapter from slash commands to the policy layer (``alertbot.services``).

Slack wants an answer within 3 seconds. Commands that are quick answer at once; runbook planning
answers "planning…" and posts the plan (with Approve / Cancel buttons) to ``response_url`` from a
tracked background task. Who may do what is the services' decision (``slack.responders``,
``slack.runbook_approvers``); a refusal is an ephemeral answer naming the key, and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from alertbot.domain.jsontypes import SlackPayload
from alertbot.domain.parse import format_duration
from alertbot.domain.text import escape_mrkdwn as mrkdwn
from alertbot.errors import AlertbotError
from alertbot.services import Services
from alertbot.services.roles import Action, Actor, Forbidden
from alertbot.slack.common import Background, SlackMessage, ephemeral, not_an_incident_id, proposal_message
from alertbot.slack.interactions import Interactions
from alertbot.store import incidents
from alertbot.store.engine import Store
from alertbot.store.schema import parse_id
from alertbot.timeline import incident_timeline

USAGE = """*`/alertbot` commands*
• `help` — this message
• `status [service]` — firing incidents by severity
• `ack ID` / `resolve ID` — acknowledge or resolve incident ID (PagerDuty and the Slack message follow)
• `silence name=value... DURATION` — e.g. `silence service=grocery alertname=HighLatencyP95 2h`
• `runbook list` — runbooks and their params
• `runbook run NAME [name=value...]` — plan it; Approve / Cancel buttons run or discard the plan
• `rollback NAMESPACE/VIRTUALSERVICE` — plan the emergency rollback of that VirtualService (all to stable)
• `rollback --to last-good NAMESPACE/VIRTUALSERVICE` — plan restoring its last-known-good weights
• `timeline ID` — incident ID's alerts, notifications, changes, runbook runs and acks, in order
• `oncall [SCHEDULE]` — who is on call now, and who is next
• `oncall override @someone DURATION [SCHEDULE]` — @someone covers the schedule from now, e.g. `4h`"""
# Slack shows this under the command as it is typed (the app manifest's usage_hint).
USAGE_HINT = (
    "help | status | ack ID | resolve ID | timeline ID | silence k=v... 2h | runbook list | rollback NS/VS | oncall"
)
TIMELINE_LINES = 40
SEVERITY_ORDER = ("critical", "warning", "info")


@dataclass(frozen=True)
class Command:
    user_id: str
    user_name: str
    text: str
    response_url: str

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> Command:
        """A slash command from Slack's fields: the form of an HTTP request or a Socket Mode payload."""
        return cls(
            user_id=str(fields.get("user_id", "")),
            user_name=str(fields.get("user_name", "")),
            text=str(fields.get("text", "")),
            response_url=str(fields.get("response_url", "")),
        )


Handler = Callable[["SlackCommands", Command, list[str]], Awaitable[SlackMessage | None]]


class SlackCommands:
    """Slash commands (a verb → handler table) and, through :class:`Interactions`, the buttons."""

    def __init__(
        self,
        *,
        store: Store,
        services: Services,
        clock: Callable[[], datetime],
        session: aiohttp.ClientSession,
        client: AsyncWebClient | None = None,
        lookback: timedelta = timedelta(minutes=30),
    ) -> None:
        self._store = store
        self._roles = services.roles
        self._silences = services.silences
        self._incidents = services.incidents
        self._approvals = services.approvals
        self._oncall = services.oncall
        self._clock = clock
        self._lookback = lookback
        self.background = Background(session)
        self.interactions = Interactions(
            store=store,
            services=services,
            background=self.background,
            client=client,
            plan=self.plan_for_approval,
        )

    async def idle(self) -> None:
        await self.background.idle()

    async def stop(self) -> None:
        await self.background.stop()

    async def command(self, cmd: Command) -> SlackMessage:
        words = cmd.text.split()
        verb = words[0].lower() if words else "help"
        handler = VERBS.get(verb)
        try:
            answer = await handler(self, cmd, words[1:]) if handler is not None else None
        except Forbidden as exc:
            return ephemeral(exc.message)
        except AlertbotError as exc:
            return ephemeral(f":warning: {mrkdwn(exc.message)}")
        if answer is None:
            return ephemeral(f"I don't know `{mrkdwn(cmd.text.strip() or verb)}`.\n{USAGE}")
        return answer

    async def interaction(self, payload: Mapping[str, Any]) -> SlackMessage | None:
        return await self.interactions.handle(payload)

    async def cancel_resolved_approvals(self) -> None:
        """Cancel pending approvals whose alert resolved, and say so in the alert's thread."""
        cancelled = await self._approvals.cancel_for_resolved()
        if cancelled:
            await self.interactions.announce_cancelled(cancelled)

    # --- handlers -------------------------------------------------------------------------

    async def _help(self, cmd: Command, args: list[str]) -> SlackMessage | None:
        return ephemeral(USAGE)

    async def _status(self, cmd: Command, args: list[str]) -> SlackMessage | None:
        firing = await self._store.read(incidents.list_incidents, status="firing", limit=200)
        if args:
            firing = [i for i in firing if i.service == args[0]]
        if not firing:
            return ephemeral(":white_check_mark: nothing is firing" + (f" for {mrkdwn(args[0])}" if args else ""))
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
                safe_link = link.startswith(("http://", "https://")) and not any(c in link for c in "<>|")
                suffix = f" <{link.replace('&', '&amp;')}|runbook>" if safe_link else ""
                muted = f" _(muted: {mrkdwn(incident.suppressed_by)})_" if incident.suppressed_by else ""
                lines.append(
                    f"• #{incident.id} {mrkdwn(incident.alertname)} {mrkdwn(incident.service)} — {age}{suffix}{muted}"
                )
        return ephemeral("\n".join(lines))

    async def _ack(self, cmd: Command, args: list[str]) -> SlackMessage | None:
        return await self.interactions.incident_action(Action.ACK, args[0], cmd.user_id) if len(args) == 1 else None

    async def _resolve(self, cmd: Command, args: list[str]) -> SlackMessage | None:
        if len(args) != 1:
            return None
        return await self.interactions.incident_action(Action.RESOLVE, args[0], cmd.user_id)

    async def _silence(self, cmd: Command, args: list[str]) -> SlackMessage | None:
        if len(args) < 2:
            return ephemeral("usage: `silence name=value... DURATION`, e.g. `silence service=grocery 2h`")
        silence = await self._silences.create(
            Actor.slack(cmd.user_id), args[:-1], duration=args[-1], comment=f"by {cmd.user_name}"
        )
        shown = ", ".join(f"`{mrkdwn(str(m))}`" for m in silence.matchers)
        length = format_duration(silence.ends_at - silence.starts_at)
        return {
            "response_type": "in_channel",
            "text": f":mute: <@{cmd.user_id}> silenced {shown} for {length} (silence {silence.id})",
        }

    async def _runbook(self, cmd: Command, args: list[str]) -> SlackMessage | None:
        if args[:1] == ["list"]:
            return self._runbook_list()
        if args[:1] == ["run"] and len(args) >= 2:
            return self.plan_for_approval(cmd.user_id, cmd.response_url, args[1], args[2:])
        return None

    async def _rollback(self, cmd: Command, args: list[str]) -> SlackMessage | None:
        if len(args) == 1 and args[0].count("/") == 1:
            runbook, target = "emergency-rollback", args[0]
        elif args[:2] == ["--to", "last-good"] and len(args) == 3 and args[2].count("/") == 1:
            runbook, target = "restore-last-good", args[2]
        else:
            return None
        namespace, vs = target.split("/")
        return self.plan_for_approval(
            cmd.user_id, cmd.response_url, runbook, [f"namespace={namespace}", f"virtualservice={vs}"]
        )

    async def _timeline(self, cmd: Command, args: list[str]) -> SlackMessage | None:
        if len(args) != 1:
            return None
        incident_id = parse_id(args[0])
        if incident_id is None:
            return not_an_incident_id(args[0])
        entries = await self._store.read(incident_timeline, incident_id, lookback=self._lookback, now=self._clock())
        if entries is None:
            return ephemeral(f":warning: no incident {incident_id}")
        lines = [f"`{e.at.strftime('%m-%d %H:%M:%S')}` *{e.kind}* {mrkdwn(e.text)}" for e in entries[-TIMELINE_LINES:]]
        cut = len(entries) - TIMELINE_LINES
        head = f"*Timeline of incident {incident_id}*" + (
            f" (latest {TIMELINE_LINES}; {cut} earlier in the API)" if cut > 0 else ""
        )
        return ephemeral("\n".join([head, *lines]))

    def _runbook_list(self) -> SlackMessage:
        runbooks = self._approvals.runbooks
        if not runbooks:
            return ephemeral("no runbooks are loaded")
        lines = [
            f"• `{rb.name}` [{rb.risk}] {rb.description} — params: "
            + (", ".join(p.name + ("*" if p.required else f"={p.default or ''}") for p in rb.params) or "none")
            for rb in runbooks.values()
        ]
        return ephemeral("*Runbooks* (* = required)\n" + "\n".join(lines))

    def plan_for_approval(self, user: str, response_url: str, name: str, args: list[str]) -> SlackMessage:
        """Validate now, plan in the background, post the plan with Approve / Cancel to ``response_url``."""
        params: dict[str, str] = {}
        for arg in args:
            key, sep, value = arg.partition("=")
            if not sep:
                return ephemeral(f":warning: `{mrkdwn(arg)}`: params are written name=value")
            params[key] = value
        runbook, resolved = self._approvals.prepare(name, params)
        self.background.later(f"slack-plan-{name}", self._plan_and_post(user, response_url, runbook.name, resolved))
        return ephemeral(f"Planning `{name}`… the plan will appear here with Approve / Cancel buttons.")

    async def _plan_and_post(self, user: str, url: str, name: str, params: dict[str, str]) -> None:
        runbook = self._approvals.runbooks[name]
        try:
            proposal = await self._approvals.propose(Actor.slack(user), runbook, params)
        except AlertbotError as exc:
            await self.background.respond(url, ephemeral(f":x: could not plan `{name}`: {mrkdwn(exc.message)}"))
            return
        message = proposal_message(proposal, self._roles.approvers, self._approvals.ttl, lead=f"<@{user}> asks to run")
        await self.background.respond(url, message)

    async def _oncall_command(self, cmd: Command, args: list[str]) -> SlackMessage | None:
        if args[:1] == ["override"]:
            if len(args) not in (3, 4):
                return ephemeral(
                    "usage: `oncall override @someone DURATION [SCHEDULE]`, e.g. `oncall override @carol 4h`"
                )
            made = await self._oncall.override(
                Actor.slack(cmd.user_id), args[1], args[2], args[3] if len(args) == 4 else None
            )
            until = made.end.strftime("%Y-%m-%d %H:%M UTC")
            text = f":busts_in_silhouette: <@{made.user}> covers *{made.schedule}* until {until}"
            return {"response_type": "in_channel", "text": f"{text} (set by <@{cmd.user_id}>)"}
        if len(args) > 1:
            return None
        rows = await self._oncall.who(args[0] if args else None)
        if not rows:
            return ephemeral("No on-call schedule is configured (`oncall.schedules`).")
        lines = []
        for row in rows:
            covering = " (override)" if row.now.override else ""
            lines.append(
                f"*{row.schedule.name}*: {_person(row.now.user)}{covering} until "
                f"{row.now.end.strftime('%a %d %b %H:%M UTC')}, then {_person(row.next.user)}"
            )
        return ephemeral("\n".join(lines))


def _person(user: str) -> str:
    return f"<@{user}>" if user else "nobody (a gap in the calendar)"


VERBS: dict[str, Handler] = {
    "help": SlackCommands._help,
    "status": SlackCommands._status,
    "ack": SlackCommands._ack,
    "resolve": SlackCommands._resolve,
    "silence": SlackCommands._silence,
    "runbook": SlackCommands._runbook,
    "rollback": SlackCommands._rollback,
    "timeline": SlackCommands._timeline,
    "oncall": SlackCommands._oncall_command,
}


def parse_interaction(form_payload: str) -> SlackPayload:
    data = json.loads(form_payload)
    if not isinstance(data, dict):
        raise ValueError("payload must be a JSON object")
    return data
