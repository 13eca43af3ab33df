"""An escalation policy as outbox rows: each step, the first re-notification, an acknowledgement's
timeout — each a held row on the ``escalation`` channel, due when it should happen.

Ingest lays a policy out when an incident pages; an acknowledgement adds its timeout; a
re-notification adds the next one; an expired acknowledgement lays the policy out again. All of
them build their rows here, from the page's own notification.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from alertbot.domain.oncall import EscalationPolicy, plan
from alertbot.domain.outbox import Channel, OutboxEvent, OutboxIntent
from alertbot.domain.parse import format_duration
from alertbot.notify.base import EscalationStep, Notification

PlannedRow = tuple[OutboxIntent, datetime, str]  # the row, when it is due, why it waits until then


def row(page: Notification, step: EscalationStep, why: str) -> PlannedRow:
    """``page`` (any notification of the incident) carrying ``step``, due at ``step.due``."""
    n = page.model_copy(
        update={"channel": Channel.ESCALATION.value, "target": step.row_target, "event": "trigger", "escalation": step}
    )
    intent = OutboxIntent(
        incident_id=n.incident_id,
        event=OutboxEvent.TRIGGER,
        channel=Channel.ESCALATION.value,
        target=step.row_target,
        payload=n.model_dump(mode="json"),
    )
    return intent, step.due, why


def policy_rows(
    page: Notification, policy: EscalationPolicy, start: datetime, pages: Sequence[str]
) -> list[PlannedRow]:
    """Every step of ``policy`` from ``start``, and its first re-notification (``renotify``)."""
    common = {"policy": policy.name, "pages": list(pages), "ack_timeout": policy.ack_timeout}
    steps = plan(policy, start)
    out = [
        row(
            page,
            EscalationStep(
                number=step.number,
                of=step.of,
                target=step.target,
                due=step.due,
                next_target=after.target if after else "",
                next_due=after.due if after else None,
                renotify=policy.renotify,
                **common,
            ),
            step.describe(),
        )
        for step, after in zip(steps, [*steps[1:], None], strict=True)
    ]
    if policy.renotify is not None:
        first = EscalationStep(kind="renotify", due=start + policy.renotify, renotify=policy.renotify, **common)
        out.append(renotify_row(page, first))
    return out


def renotify_row(page: Notification, step: EscalationStep) -> PlannedRow:
    assert step.renotify is not None
    return row(page, step, f"re-notification every {format_duration(step.renotify)} until acknowledged")


def next_renotify(page: Notification, step: EscalationStep, now: datetime) -> PlannedRow:
    """The re-notification after this one."""
    assert step.renotify is not None
    return renotify_row(page, step.model_copy(update={"due": now + step.renotify}))


def ack_timeout_row(page: Notification, step: EscalationStep, *, by: str, now: datetime) -> PlannedRow | None:
    """When ``by``'s acknowledgement (given ``now``) lapses, if ``step``'s policy has an ``ack_timeout``."""
    if step.ack_timeout is None:
        return None
    timeout = step.model_copy(
        update={
            "kind": "ack_timeout",
            "number": 0,
            "of": 0,
            "target": "",
            "next_target": "",
            "next_due": None,
            "due": now + step.ack_timeout,
            "acked_by": by,
            "acked_at": now,
        }
    )
    return row(page, timeout, f"the acknowledgement by {by} lapses after {format_duration(step.ack_timeout)}")
