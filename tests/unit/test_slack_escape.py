"""Alert text is data, never markup: every value that comes from an alert, a label, an annotation or a
change event is escaped for Slack mrkdwn (``&``, ``<``, ``>``) in every message alertbot builds —
alert messages, storm summaries, thread replies and the text fallback — while alertbot's own links,
dates and mentions keep working."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from alertbot.domain.models import Severity
from alertbot.domain.text import escape_mrkdwn
from alertbot.notify import slack_blocks
from alertbot.notify.base import CorrelatedChange, Event, Notification, StormSummary

HOSTILE = [
    "<!channel> urgent",
    "<https://evil.example/login|Click to re-authenticate PagerDuty>",
    "<!subteam^S123>",
    "a & b",
    "<@U999> <#C123>",
]
# What the hostile values would turn into if they reached Slack unescaped (alertbot's own dates and
# mentions of the acting user are allowed: they are not among them).
BAD = re.compile(r"<!channel|<!subteam|<https?://evil|<@U999|<#C123|&(?!amp;|lt;|gt;)")


def _hostile(i: int) -> str:
    return HOSTILE[i % len(HOSTILE)] + f" {i}"


def _notification(*, event: Event = "trigger", storm: bool = False, actor: str | None = None) -> Notification:
    labels = {f"label{i}": _hostile(i) for i in range(5)}
    annotations = {"summary": _hostile(0), "description": _hostile(1), "dashboard_url": "https://dash.example/x"}
    return Notification(
        incident_id=7,
        event=event,
        channel="slack",
        target="#alerts",
        stands_in_for=[],
        fingerprint="abc<!channel>",
        alertname=_hostile(2),
        service=_hostile(3),
        namespace=_hostile(4),
        severity=Severity.CRITICAL,
        reason=_hostile(1),
        summary=_hostile(0),
        description=_hostile(1),
        labels=labels,
        annotations=annotations,
        starts_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        ends_at=datetime(2026, 12, 1, 10, 5, tzinfo=UTC),
        generator_url="https://prometheus.example/graph",
        runbook_url="https://runbooks.example/x",
        group_key=_hostile(3),
        storm=StormSummary(
            group_key=_hostile(0),
            group_labels={"service": _hostile(1), "alertname": _hostile(2)},
            count=40,
            firing=30,
            sample=[_hostile(i) for i in range(5)],
        )
        if storm
        else None,
        actor=actor,
        approvals=[{"run_id": 3, "runbook": _hostile(4)}],
        note=_hostile(3),
        changes=[CorrelatedChange(id=i, kind="deployment", text=_hostile(i), target="") for i in range(4)],
    )


def _mrkdwn_texts(value: Any) -> Iterator[str]:
    """Every mrkdwn text object in a Block Kit structure (plain_text is never parsed for markup)."""
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            yield value["text"]
        for item in value.values():
            yield from _mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _mrkdwn_texts(item)


VARIANTS = [
    pytest.param({"event": "trigger"}, id="trigger"),
    pytest.param({"event": "update"}, id="flapping-update"),
    pytest.param({"event": "acknowledge", "actor": "slack:U1"}, id="acknowledged"),
    pytest.param({"event": "resolve", "actor": "api <!channel> & co"}, id="resolved-by-hand"),
    pytest.param({"event": "trigger", "storm": True}, id="storm"),
    pytest.param({"event": "resolve", "storm": True}, id="storm-over"),
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_every_builder_escapes_alert_values(kwargs: dict[str, Any]) -> None:
    """Hostile values in every field: no mention, masked link or bare ``&`` survives into any
    mrkdwn text, the text fallback or a thread reply, but the escaped words are still there."""
    n = _notification(**kwargs)
    resolved = n.event == "resolve"
    texts = [
        *_mrkdwn_texts(slack_blocks.alert_blocks(n, resolved=resolved)),
        slack_blocks.fallback_text(n, resolved=resolved),
        slack_blocks.refire_thread_text(n),
        slack_blocks.ack_thread_text(n),
        slack_blocks.resolve_thread_text(n, slack_blocks.fallback_text(n, resolved=True)),
    ]
    if n.storm is not None:
        texts += list(_mrkdwn_texts(slack_blocks.storm_blocks(n, resolved=resolved)))
    for text in texts:
        assert not BAD.search(text), text
    joined = "\n".join(texts)
    assert "&lt;!channel&gt;" in joined and "a &amp; b" in joined


def test_own_links_dates_and_mentions_keep_working() -> None:
    """alertbot's own markup is untouched: the start time is a Slack date, an acting Slack user a
    mention; an actor that is not a Slack user is escaped."""
    n = _notification(event="acknowledge", actor="slack:U1")
    texts = "\n".join(_mrkdwn_texts(slack_blocks.alert_blocks(n, resolved=False)))
    assert "<!date^" in texts and "<@U1>" in texts
    assert slack_blocks.ack_thread_text(n) == "Acknowledged by <@U1>."
    assert slack_blocks.who("api <!here>") == "api &lt;!here&gt;"
    assert slack_blocks.who("slack:U1><!channel") == "<@U1&gt;&lt;!channel>"


def test_escape_helper() -> None:
    """The one escape: exactly ``&``, ``<`` and ``>``, ampersand first (no double escaping of input)."""
    assert escape_mrkdwn("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape_mrkdwn("&lt;") == "&amp;lt;"
    assert escape_mrkdwn("plain *bold* _it_") == "plain *bold* _it_"
