"""Who may do what (docs/operations.md, "Roles and silences").

An :class:`Actor` is whoever asks: a Slack user (checked against ``slack.responders`` and
``slack.runbook_approvers``), or the HTTP API / CLI (already authenticated by the API token or by
access to the host and the store, so trusted). Roles list Slack user IDs (``U…``/``W…``), user-group
IDs (``S…``, whose members are asked of Slack through ``members``) or ``"*"`` for the whole
workspace. An empty list lets nobody in: roles fail closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from alertbot.errors import AlertbotError

ANYONE = "*"

GroupMembers = Callable[[str], Awaitable[set[str]]]


class Action(StrEnum):
    ACK = "ack"
    RESOLVE = "resolve"
    SILENCE = "silence"
    APPROVE = "approve"
    OVERRIDE = "override"  # cover an on-call schedule for a while


class Source(StrEnum):
    SLACK = "slack"
    API = "api"
    CLI = "cli"
    UI = "ui"  # the web console: the logged-in identity, with the role its login gave it


@dataclass(frozen=True)
class Actor:
    source: Source
    id: str
    role: str = ""  # the console's: viewer | responder | approver

    @property
    def audit(self) -> str:
        """How the actor is recorded: ``slack:U123``; the API and the CLI record the name they were given."""
        return f"slack:{self.id}" if self.source is Source.SLACK else self.id

    @property
    def mention(self) -> str:
        return f"<@{self.id}>" if self.source is Source.SLACK else self.audit

    @classmethod
    def slack(cls, user_id: str) -> Actor:
        return cls(Source.SLACK, user_id)

    @classmethod
    def console(cls, identity: str, role: str) -> Actor:
        """``identity`` as the console shows and audits it (``ui:alice``)."""
        return cls(Source.UI, identity, role)


class Forbidden(AlertbotError):
    """The actor's role does not allow the action; nothing was changed."""

    code = "forbidden"
    http_status = 403
    exit_code = 1


# Which config key grants each action (responders may ack, resolve, silence; approvers may also approve).
ROLE_KEYS: dict[Action, tuple[str, ...]] = {
    Action.ACK: ("slack.responders", "slack.runbook_approvers"),
    Action.RESOLVE: ("slack.responders", "slack.runbook_approvers"),
    Action.SILENCE: ("slack.responders", "slack.runbook_approvers"),
    Action.APPROVE: ("slack.runbook_approvers",),
    Action.OVERRIDE: ("slack.responders", "slack.runbook_approvers"),
}
# The console's roles (ui.users[].role, ui.proxy.responders/approvers): the same two as in Slack.
CONSOLE_ROLES: dict[Action, tuple[str, ...]] = {
    Action.ACK: ("responder", "approver"),
    Action.RESOLVE: ("responder", "approver"),
    Action.SILENCE: ("responder", "approver"),
    Action.APPROVE: ("approver",),
    Action.OVERRIDE: ("responder", "approver"),
}
_VERBS = {
    Action.ACK: "acknowledge incidents",
    Action.RESOLVE: "resolve incidents",
    Action.SILENCE: "create silences",
    Action.APPROVE: "approve runbook runs",
    Action.OVERRIDE: "change who is on call",
}


async def _no_groups(group: str) -> set[str]:
    return set()


class Roles:
    def __init__(
        self, *, responders: Sequence[str], approvers: Sequence[str], members: GroupMembers = _no_groups
    ) -> None:
        self._lists = {"slack.responders": tuple(responders), "slack.runbook_approvers": tuple(approvers)}
        self._members = members

    @property
    def approvers(self) -> tuple[str, ...]:
        return self._lists["slack.runbook_approvers"]

    async def _listed(self, user: str, entries: Sequence[str]) -> bool:
        if ANYONE in entries or user in entries:
            return True
        for group in (e for e in entries if e.startswith("S")):
            if user in await self._members(group):
                return True
        return False

    async def may(self, actor: Actor, action: Action) -> bool:
        if actor.source is Source.UI:
            return actor.role in CONSOLE_ROLES[action]
        if actor.source is not Source.SLACK:
            return True
        if not actor.id:
            return False
        for key in ROLE_KEYS[action]:
            if await self._listed(actor.id, self._lists[key]):
                return True
        return False

    async def require(self, actor: Actor, action: Action) -> None:
        """Raise :class:`Forbidden` (naming the config key that would allow it) unless allowed."""
        if not await self.may(actor, action):
            raise Forbidden(refusal(actor, action))


def refusal(actor: Actor, action: Action) -> str:
    if actor.source is Source.UI:
        role = CONSOLE_ROLES[action][0]
        return f"{actor.audit} may not {_VERBS[action]}: that needs the {role} role in the console (ui.users, ui.proxy)"
    key = ROLE_KEYS[action][0]
    return f":no_entry: {actor.mention} may not {_VERBS[action]}: ask to be added to `{key}` in alertbot's config"
