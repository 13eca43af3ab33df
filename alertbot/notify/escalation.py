"""The ``escalation`` channel: each outbox row is one step of an incident's escalation policy, due at
its time (ingest lays the whole policy out when the incident pages: domain/oncall.py ``plan``).

Being outbox rows, steps survive restarts, are claimed by one replica, retried like any
notification, and show in the incident's timeline. An acknowledgement or a resolve cancels the
steps not yet taken (store/outbox.py ``cancel_escalation``); a step already claimed looks at the
incident first and does nothing if it was acknowledged or resolved meanwhile.

A step tells its target: ``schedule:NAME`` → whoever is on call now, by direct message;
``user:ID`` → that person, by direct message; ``channel:#name`` → the channel, with ``@here``;
``pagerduty`` → a PagerDuty trigger (the page's own dedup key). Without Slack, a person or channel
step is a console line standing in for it. After each step, the page's Slack message shows who has
been told and what comes next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy.engine import Connection

from alertbot.domain.parse import format_duration
from alertbot.domain.text import escape_mrkdwn as e
from alertbot.errors import NotifyError
from alertbot.notify.base import EscalationStep, Notification, Notifier
from alertbot.notify.escalation_plan import PlannedRow, next_renotify, policy_rows
from alertbot.notify.rota import Rota
from alertbot.notify.slack import SlackNotifier
from alertbot.notify.slack_blocks import who
from alertbot.settings_sections import OncallConfig
from alertbot.store import incidents, outbox, silences
from alertbot.store.engine import Store
from alertbot.store.incidents import IncidentRecord

log = structlog.get_logger("alertbot.escalation")


class Reopen(Protocol):
    """Ends a lapsed acknowledgement and queues ``then`` (incident_actions.acknowledgement_expired)."""

    def __call__(
        self, conn: Connection, incident_id: int, /, *, by: str, now: datetime, note: str, then: Sequence[PlannedRow]
    ) -> IncidentRecord | None: ...


def _at(when: datetime) -> str:
    return when.strftime("%d %b %H:%M UTC")


class Escalator:
    channel = "escalation"

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        oncall_config: Callable[[], OncallConfig],
        clock: Callable[[], datetime],
        *,
        reopen: Reopen,
        rota: Rota,
    ) -> None:
        self._rota = rota  # who is on call for a schedule: step
        self._reopen = reopen  # incident_actions.acknowledgement_expired, in one transaction
        self._store = store
        self._notifiers = notifiers  # the other channels, by name (looked up at each step)
        self._oncall = oncall_config  # read at each step: a reload's schedules apply to the next one
        self._clock = clock

    async def send(self, n: Notification) -> None:
        step = n.escalation
        if step is None:
            raise NotifyError("an escalation row without its step", retryable=False)
        # The chain's newest episode: a re-fire that continued the incident keeps its escalation.
        incident = await self._store.read(incidents.current_of_chain, n.incident_id)
        if step.kind == "ack_timeout":
            await self._ack_lapsed(step, n, incident)
            return
        if step.kind == "renotify":
            await self._renotify(step, n, incident)
            return
        why = await self._moot(incident)
        if why:
            log.info("escalation_step_skipped", incident_id=n.incident_id, step=step.number, why=why)
            return
        told = await self._take(step, n)
        log.info("escalation_step_taken", incident_id=n.incident_id, step=step.number, of=step.of, told=told)
        try:  # best effort: the step is taken, and a retry would take it again
            await self._say_in_thread(step, n, told)
        except NotifyError as exc:
            log.warning("escalation_thread_reply_failed", incident_id=n.incident_id, error=exc.message)

    async def _moot(self, incident: IncidentRecord | None) -> str:
        """Why telling anyone of ``incident`` now is moot ("" when it is not)."""
        if incident is None or incident.status != "firing":
            return "resolved"
        if incident.acked_by:
            return f"acknowledged by {incident.acked_by}"
        now = self._clock()
        labels = {**incident.labels, "severity": incident.severity.value}
        silenced = next((s for s in await self._store.read(silences.active, now) if s.silences(labels, now)), None)
        return f"silenced by silence {silenced.id}" if silenced is not None else ""

    async def _renotify(self, step: EscalationStep, n: Notification, incident: IncidentRecord | None) -> None:
        """Re-post the unacknowledged page to its channels (a thread reply also sent to the channel,
        so the message keeps its one thread). The next re-notification is planned first, so a failed
        post does not end the chain; a silenced page, or one whose resolve is being held (a re-fire
        would continue it), keeps the chain without a post. Resolved or acknowledged, it ends."""
        why = await self._moot(incident)
        ids = [n.incident_id] + ([incident.id] if incident is not None else [])
        held = why == "resolved" and incident is not None and await self._store.read(outbox.resolve_held, ids)
        if why.startswith("acknowledged") or (why == "resolved" and not held):
            log.info("renotify_ended", incident_id=n.incident_id, why=why)
            return
        now = self._clock()
        nxt = next_renotify(n, step, now)

        def plan_next(conn: Connection) -> None:
            # A retry of this row finds the next one planned already.
            if not outbox.waiting(conn, n.incident_id, channel=self.channel, target="renotify"):
                intent, due, reason = nxt
                outbox.enqueue(conn, [intent], now, hold=(due, reason))

        await self._store.write(plan_next)
        if why:
            log.info("renotify_skipped", incident_id=n.incident_id, why="resolve held" if held else why)
            return
        text = f"<!here> Still firing and unacknowledged after {format_duration(now - n.starts_at)}: {e(n.summary)}"
        slack = self._notifiers.get("slack")
        if isinstance(slack, SlackNotifier) and step.pages:
            for target in step.pages:
                await slack.reply_in_thread(target, n.incident_id, text, broadcast=True)
        else:
            await self._stand_in(n.model_copy(update={"note": text}), "slack")
        log.info("escalation_renotified", incident_id=n.incident_id, pages=step.pages)

    async def _ack_lapsed(self, step: EscalationStep, n: Notification, incident: IncidentRecord | None) -> None:
        """The acknowledgement this row times has lasted ``ack_timeout``: if it still holds and the
        incident still fires, it ends and the policy runs again from its first step."""
        if incident is None or incident.status != "firing" or incident.acked_by != step.acked_by:
            log.info("ack_timeout_moot", incident_id=n.incident_id, acked_by=incident.acked_by if incident else None)
            return
        assert step.ack_timeout is not None
        now = self._clock()
        policy = self._oncall().policy(step.policy)  # None if a reload removed it: the ack still lapses
        again = policy_rows(n.model_copy(update={"escalation": None}), policy, now, step.pages) if policy else []
        lasted = format_duration(step.ack_timeout)
        note = f"acknowledgement by {step.acked_by} expired after {lasted} while still firing"
        reopened = await self._store.write(self._reopen, incident.id, by=step.acked_by, now=now, note=note, then=again)
        if reopened is None:
            return
        log.info("ack_expired", incident_id=n.incident_id, acked_by=step.acked_by, policy=step.policy)
        slack = self._notifiers.get("slack")
        if not isinstance(slack, SlackNotifier):
            return
        text = f"The acknowledgement by {who(step.acked_by)} expired after {lasted} while still firing"
        text += f": escalating again by *{e(step.policy)}*." if policy else "."
        try:
            for target in step.pages:
                await slack.reply_in_thread(target, n.incident_id, text)
        except NotifyError as exc:
            log.warning("escalation_thread_reply_failed", incident_id=n.incident_id, error=exc.message)

    async def _take(self, step: EscalationStep, n: Notification) -> str:
        """Tell the step's target; returns whom it told, as Slack shows it."""
        kind, _, name = step.target.partition(":")
        heading = f"step {step.number} of {step.of} of escalation *{step.policy}*"
        if kind == "pagerduty":
            pagerduty = self._notifiers.get("pagerduty")
            page = n.model_copy(update={"channel": "pagerduty", "target": "", "event": "trigger", "escalation": None})
            if pagerduty is None:
                await self._stand_in(page, "pagerduty")
            else:
                await pagerduty.send(page)
            return "PagerDuty"
        if kind == "channel":
            channel = name if name.startswith("#") else f"#{name}"
            await self._tell(n, f"<!here> {heading}", channel=channel, stand_in=f"slack:{channel}")
            return channel
        user = name if kind == "user" else await self._on_call(name)
        await self._tell(n, f"<@{user}> you are paged: {heading}", user=user, stand_in=f"slack:@{user}")
        return f"<@{user}>"

    async def _on_call(self, schedule_name: str) -> str:
        schedule = self._oncall().schedule(schedule_name)
        if schedule is None:  # removed by a reload since the step was planned
            raise NotifyError(f"schedule {schedule_name!r} is no longer configured", retryable=False)
        user = (await self._rota.on_call(schedule, self._clock())).user
        if not user:
            raise NotifyError(
                f"nobody is on call for schedule {schedule_name!r} now (a gap in its calendar)", retryable=False
            )
        return user

    async def _tell(self, n: Notification, heading: str, *, stand_in: str, user: str = "", channel: str = "") -> None:
        slack = self._notifiers.get("slack")
        if not isinstance(slack, SlackNotifier):
            await self._stand_in(n.model_copy(update={"note": heading}), stand_in)
        elif user:
            await slack.direct_message(user, n, heading)
        else:
            await slack.post_with_heading(channel, n, heading)

    async def _stand_in(self, n: Notification, receiver: str) -> None:
        console = self._notifiers["console"]
        await console.send(n.model_copy(update={"channel": "console", "target": "", "stands_in_for": [receiver]}))

    async def _say_in_thread(self, step: EscalationStep, n: Notification, told: str) -> None:
        """The page's thread says who has been told and what comes next. A reply, not an edit of the
        page: the message keeps its buttons and whatever an ack wrote on it."""
        slack = self._notifiers.get("slack")
        if not isinstance(slack, SlackNotifier) or not step.pages:
            return
        text = f"Escalation *{step.policy}*: step {step.number} of {step.of} told {told} at {_at(self._clock())}."
        if step.next_target and step.next_due is not None:
            text += f" Next, at {_at(step.next_due)} unless acknowledged: `{step.next_target}`."
        for target in step.pages:
            await slack.reply_in_thread(target, n.incident_id, text)
