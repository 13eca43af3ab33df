"""Block Kit rendering of alert messages (pure: a notification in, text + blocks out).

Text from alerts is data, never markup: every value that came from an alert, a label, an annotation
or a change event goes through ``escape_mrkdwn`` (``e`` below) before it is put into mrkdwn or the
text fallback, so ``<!channel>`` or a masked link in an annotation shows as written instead of
pinging or linking. alertbot's own markup (dates, mentions of the Slack user who acted) is added
around the escaped values. ``plain_text`` objects (headers, buttons) are never parsed by Slack and
take values as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from alertbot.domain.jsontypes import SlackBlock
from alertbot.domain.parse import format_duration
from alertbot.domain.text import escape_mrkdwn as e
from alertbot.notify.base import Notification
from alertbot.notify.links import ContextLink

EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
RESOLVED_EMOJI = ":white_check_mark:"
TEXT_LIMIT = 2900  # Slack caps a section's text at 3000 characters


_CUT_ENTITY = re.compile(r"&[a-z]{0,3}$")


def _clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """At most ``limit`` characters; a cut never leaves half an escape (``&am``) behind."""
    return text if len(text) <= limit else _CUT_ENTITY.sub("", text[: limit - 1]) + "…"


def _ts(when: datetime) -> str:
    """Slack renders this in each reader's own time zone."""
    epoch = int(when.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time_secs}}|{when.isoformat()}>"


def who(actor: str | None) -> str:
    """``slack:U123`` → a Slack mention; ``pagerduty:Name`` → "Name in PagerDuty"; anything else as
    written (escaped)."""
    if not actor:
        return "someone"
    if actor.startswith("slack:"):
        return f"<@{e(actor.removeprefix('slack:'))}>"
    if actor.startswith("pagerduty:"):
        return f"{e(actor.removeprefix('pagerduty:'))} in PagerDuty"
    return e(actor)


def fallback_text(n: Notification, *, resolved: bool) -> str:
    state = "RESOLVED" if resolved else ("ACKED" if n.event == "acknowledge" else n.severity.value.upper())
    if n.note and not resolved and n.event == "update":
        state = f"FLAPPING {state}"
    if n.storm is not None:
        what = "ended" if resolved else f"{n.storm.firing} firing"
        return _clip(f"[STORM {state}] {n.storm.count} alerts in group {_group(n)} ({what})", 3000)
    where = f" {e(n.service)}" if n.service else ""
    return _clip(f"[{state}] {e(n.alertname or n.fingerprint)}{where}: {e(n.summary)}", 3000)


def refire_thread_text(n: Notification) -> str:
    """The thread reply when an alert fires again under its earlier message."""
    return f"Firing again (incident {n.incident_id}): {e(n.reason)}"


def ack_thread_text(n: Notification) -> str:
    """The thread reply when an incident is acknowledged."""
    return f"Acknowledged by {who(n.actor)}."


def resolve_thread_text(n: Notification, text: str) -> str:
    """The thread reply when an incident resolves; ``text`` is its (escaped) ``fallback_text``."""
    by = f" by {who(n.actor)}" if n.actor else ""
    return f"Resolved{by}. {text}"


def _group(n: Notification) -> str:
    assert n.storm is not None
    labels = n.storm.group_labels
    return e(", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or n.storm.group_key)


def storm_blocks(n: Notification, *, resolved: bool) -> list[SlackBlock]:
    """One message for a whole group in an alert storm, updated in place as alerts join and clear."""
    assert n.storm is not None
    emoji = RESOLVED_EMOJI if resolved else ":rotating_light:"
    state = "storm over" if resolved else f"{n.storm.firing} firing"
    lines = "\n".join(f"• {e(_clip(item, 200))}" for item in n.storm.sample)
    return [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "emoji": True,
                "text": _clip(f"{emoji} Alert storm: {n.storm.count} alerts ({state})", 150),
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Group* {_group(n)}\n*Latest*\n{lines}")}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Alerts of this group are summarised here "
                    "instead of one message each; see the API for every incident.",
                }
            ],
        },
    ]


def _button(text: str, action: str, value: int, style: str | None = None) -> SlackBlock:
    button: SlackBlock = {
        "type": "button",
        "text": {"type": "plain_text", "text": _clip(text, 75)},
        "action_id": action,
        "value": str(value),
    }
    if style:
        button["style"] = style
    return button


UNDO_LABELS = {"virtualservice": "Restore last good traffic", "deployment": "Undo rollout"}


def undo_button(n: Notification) -> SlackBlock | None:
    """When the newest correlated change is a traffic shift or rollout alertbot can undo: its button."""
    if not n.changes or not n.changes[0].target:
        return None
    kind = n.changes[0].target.split("/", 1)[0]
    return _button(UNDO_LABELS[kind], "change_undo", n.changes[0].id) if kind in UNDO_LABELS else None


def alert_blocks(n: Notification, *, resolved: bool, links: Sequence[ContextLink] = ()) -> list[SlackBlock]:
    if n.storm is not None:
        return storm_blocks(n, resolved=resolved)
    emoji = RESOLVED_EMOJI if resolved else EMOJI[n.severity.value]
    state = "RESOLVED" if resolved else n.severity.value.upper()
    title = f"{emoji} {state}: {n.alertname or n.fingerprint}" + (f" — {n.service}" if n.service else "")
    fields = [
        {"type": "mrkdwn", "text": _clip(f"*Service*\n{e(n.service) or '—'}", 2000)},
        {"type": "mrkdwn", "text": _clip(f"*Namespace*\n{e(n.namespace) or '—'}", 2000)},
        {"type": "mrkdwn", "text": f"*Severity*\n{n.severity.value}"},
        {"type": "mrkdwn", "text": f"*Started*\n{_ts(n.starts_at)}"},
    ]
    if resolved and n.ends_at is not None:
        lasted = format_duration(n.ends_at - n.starts_at) if n.ends_at >= n.starts_at else "—"
        fields.append({"type": "mrkdwn", "text": f"*Resolved*\n{_ts(n.ends_at)} (after {lasted})"})
    blocks: list[SlackBlock] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150), "emoji": True}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*{e(n.summary)}*\n{e(n.description)}".strip())},
            "fields": fields,
        },
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _clip(f"Why {n.severity.value}: {e(n.reason)}", 2000)},
                {"type": "mrkdwn", "text": _clip(f"incident {n.incident_id} · fingerprint `{e(n.fingerprint)}`", 2000)},
            ],
        },
    ]
    if n.changes:
        lines = "\n".join(f"• {e(c.text)}" for c in n.changes[:3])
        more = f"\n_and {len(n.changes) - 3} more_" if len(n.changes) > 3 else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*What changed*\n{lines}{more}")}})
    if n.note:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(f":repeat: {e(n.note)}", 2000)}]}
        )
    if n.event == "acknowledge" and not resolved:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f":eyes: acknowledged by {who(n.actor)}"}]}
        )
    if resolved and n.actor:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"resolved by hand by {who(n.actor)}"}]}
        )
    if not resolved:
        buttons: list[SlackBlock] = []
        if n.event != "acknowledge":
            buttons.append(_button("Ack", "incident_ack", n.incident_id))
        buttons += [
            _button("Resolve", "incident_resolve", n.incident_id),
            _button("Silence 1h", "incident_silence_1h", n.incident_id),
        ]
        buttons += [
            _button(f"Run {a['runbook']}", "runbook_approve", a["run_id"], style="primary") for a in n.approvals
        ]
        undo = undo_button(n)
        if undo is not None:
            buttons.append(undo)
        blocks.append({"type": "actions", "block_id": f"incident-{n.incident_id}", "elements": buttons})
    shown = [
        (text, url)
        for text, url in (
            ("Runbook", n.runbook_url),
            ("Source", n.generator_url),
            ("Dashboard", n.annotations.get("dashboard_url", "")),
            *((link.text, link.url) for link in links),
        )
        if url.startswith(("http://", "https://"))
    ]
    if shown:
        blocks.append(
            {
                "type": "actions",
                "block_id": "links",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": text},
                        "url": url,
                        "action_id": f"link_{i}",
                    }
                    for i, (text, url) in enumerate(shown)
                ],
            }
        )
    return blocks
