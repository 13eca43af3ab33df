"""Acknowledge and resolve by hand, for whoever's role allows it (Slack, the HTTP API, the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from alertbot import incident_actions
from alertbot.services.roles import Action, Actor, Roles
from alertbot.store import incidents
from alertbot.store.engine import Store
from alertbot.store.incidents import IncidentRecord


@dataclass(frozen=True)
class ActionOutcome:
    """``incident`` is the changed incident; ``None`` with ``state`` saying why nothing changed
    (``"missing"``, ``"already acknowledged"``, ``"resolved"``…)."""

    incident: IncidentRecord | None
    state: str = ""


class IncidentService:
    def __init__(
        self, store: Store, *, roles: Roles, clock: Callable[[], datetime], on_enqueued: Callable[[], None]
    ) -> None:
        self._store = store
        self._roles = roles
        self._clock = clock
        self._on_enqueued = on_enqueued

    async def act(self, actor: Actor, action: Action, incident_id: int) -> ActionOutcome:
        """Ack or resolve incident ``incident_id`` (raises ``Forbidden`` when the role does not allow it)."""
        assert action in (Action.ACK, Action.RESOLVE)
        await self._roles.require(actor, action)
        change = incident_actions.acknowledge if action is Action.ACK else incident_actions.resolve
        incident = await self._store.write(change, incident_id, by=actor.audit, now=self._clock())
        if incident is not None:
            self._on_enqueued()
            return ActionOutcome(incident)
        current = await self._store.read(incidents.get, incident_id)
        if current is None:
            return ActionOutcome(None, "missing")
        acked = current.acked_by and current.status == "firing"
        return ActionOutcome(None, "already acknowledged" if acked else current.status)
