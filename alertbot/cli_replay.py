"""``alertbot replay`` and ``alertbot test``: what the daemon would decide for recorded payloads.

Both run the payloads through the webhook's own ingest stages on a scratch store
(alertbot/ingest/preview.py), so they cannot disagree with the daemon: a resolve starts no
automation, a repeat sends nothing, an alert the same payload inhibits is muted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from alertbot import policy_tests
from alertbot.bootstrap import enabled_channel_names
from alertbot.cli_support import ConfigOpt, JsonOpt, fail, load, run, runbooks_of
from alertbot.domain.models import WebhookPayload
from alertbot.domain.parse import parse_webhook
from alertbot.errors import AlertbotError, PayloadError
from alertbot.ingest.preview import PREVIEW_CHANNELS, Decided, QueuedNotification, RequestedRun, preview
from alertbot.notify.links import context_links
from alertbot.notify.pagerduty import build_event
from alertbot.notify.slack_blocks import alert_blocks, fallback_text
from alertbot.observability import configure_logging
from alertbot.pipeline import plan_routing
from alertbot.runbooks.model import Runbook
from alertbot.runbooks.targets import target_refusal
from alertbot.settings import Config, load_secrets


def read_payload(path: Path) -> WebhookPayload:
    try:
        body = path.read_bytes()
    except OSError as exc:
        fail(PayloadError(f"{path}: {exc.strerror}"))
    try:
        return parse_webhook(body)
    except PayloadError as exc:
        fail(PayloadError(f"{path}: {exc.message}"))


def replay(
    files: Annotated[list[Path], typer.Argument(help="Alertmanager webhook payloads (JSON), in the order sent.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Explain, without sending anything: classification, route, the PagerDuty event and Slack message
    that would be sent, what would mute the alert, and the automations that would start — decided by
    the daemon's own ingest stages, on a fresh start receiving these payloads in order."""
    configure_logging("warning")  # the stages' own log lines go to stderr, never into this output
    cfg = load(config)
    try:
        enabled = enabled_channel_names(load_secrets(cfg))
    except AlertbotError as exc:
        fail(exc)
    runbooks = runbooks_of(cfg) if cfg.automations else {}
    payloads = [read_payload(file) for file in files]
    decided = run(preview(cfg, payloads, datetime.now(UTC)))
    for file, alerts in zip(files, decided, strict=True):
        for one in alerts:
            explained = _explain(cfg, one, enabled, runbooks)
            if as_json:
                typer.echo(json.dumps({"file": file.name, **explained}, sort_keys=True))
            else:
                _print(file, one, explained)


def _explain(cfg: Config, one: Decided, enabled: list[str], runbooks: dict[str, Runbook]) -> dict[str, Any]:
    alert = one.alert
    plan = plan_routing(cfg, alert, PREVIEW_CHANNELS)
    return {
        "alertname": alert.alertname,
        "fingerprint": alert.fingerprint,
        "status": alert.status.value,
        "severity": plan.classification.severity.value,
        "reason": plan.classification.reason,
        "route": [
            {"path": list(match.path), "receivers": list(match.receivers), "shadow": match.shadow}
            for match in plan.route.matches
        ],
        "acted": one.acted,
        "suppressed_by": one.suppressed_by,
        "notifications": [_notification(cfg, n, enabled) for n in one.notifications],
        "recorded": one.recorded,
        "automations": [_run(cfg, r, runbooks) for r in one.runs],
    }


def _notification(cfg: Config, queued: QueuedNotification, enabled: list[str]) -> dict[str, Any]:
    resolved = queued.event == "resolve"
    links = context_links(cfg.context, queued.notification, datetime.now(UTC))
    body: dict[str, Any]
    if queued.channel == "pagerduty":
        body = dict(build_event(queued.notification, "<ALERTBOT_PAGERDUTY_ROUTING_KEY>", links))
    elif queued.channel == "slack":
        body = {
            "channel": queued.target,
            "text": fallback_text(queued.notification, resolved=resolved),
            "blocks": alert_blocks(queued.notification, resolved=resolved, links=links),
        }
    else:
        body = queued.notification.model_dump(mode="json")
    return {
        "channel": queued.channel,
        "target": queued.target,
        "event": queued.event,
        "enabled": queued.channel in enabled,
        "held": queued.held,
        "body": body,
    }


def _run(cfg: Config, run_: RequestedRun, runbooks: dict[str, Runbook]) -> dict[str, Any]:
    """A run an automation asked for, and whether its target would be allowed."""
    out: dict[str, Any] = {
        "automation": run_.automation,
        "runbook": run_.runbook,
        "status": run_.status,
        "params": run_.params,
        "result": run_.result,
    }
    automation = next((a for a in cfg.automations if a.name == run_.automation), None)
    runbook = runbooks.get(run_.runbook)
    if automation is None or runbook is None or run_.status == "failed":
        return out
    try:
        targets = runbook.targets(runbook.resolve_params({k: str(v) for k, v in run_.params.items()}))
    except ValueError as exc:
        return {**out, "problem": f"would fail: {exc}"}
    refusal = target_refusal(automation, runbook, targets)
    return {**out, "targets": targets, **({"problem": f"would be rejected: {refusal}"} if refusal else {})}


def _print(file: Path, one: Decided, explained: dict[str, Any]) -> None:
    alert = one.alert
    typer.echo(f"== {file.name}: {alert.alertname or '-'} {alert.fingerprint} ({alert.status.value})")
    typer.echo(f"  classification: {explained['severity']} — {explained['reason']}")
    for match in explained["route"]:
        typer.echo("  route: " + " → ".join(match["path"]) + f"  ⇒  {', '.join(match['receivers']) or '(none)'}")
    if not explained["acted"]:
        what = "firing" if alert.status.value == "firing" else "resolved"
        typer.echo(f"  would do nothing: the same alert is already {what}")
        return
    if one.suppressed_by:
        typer.echo(f"  muted: {one.suppressed_by}")
    for n in explained["notifications"]:
        _print_notification(n)
    for summary in explained["recorded"]:
        typer.echo(f"  recorded, not sent (shadow mode): {summary}")
    if not explained["notifications"] and not explained["recorded"] and not one.suppressed_by:
        typer.echo("  would send nothing (no receivers)")
    for r in explained["automations"]:
        _print_run(r)


def _print_notification(n: dict[str, Any]) -> None:
    note = "" if n["enabled"] or n["channel"] == "console" else " [not enabled here: the console would print it]"
    held = f" [held: {n['held']}]" if n["held"] else ""
    body = json.dumps(n["body"], sort_keys=n["channel"] != "slack", ensure_ascii=False)
    if n["channel"] == "pagerduty":
        typer.echo(f"  would send PagerDuty{note}{held}: {body}")
    elif n["channel"] == "slack":
        typer.echo(f"  would send Slack {n['target']}{note}{held}: {body}")
    else:
        typer.echo(f"  would print{held}: {body}")


def _print_run(r: dict[str, Any]) -> None:
    head = f"{r['automation']}: runbook {r['runbook']} ({_mode(r['status'])})"
    if r["status"] == "failed":
        typer.echo(f"  would start automation {head} params ({r['result']})")
        return
    text = f"{head} params {json.dumps(r['params'], sort_keys=True)}"
    if "problem" in r:
        text += f" — {r['problem']}"
    elif "targets" in r:
        text += f" on {', '.join(r['targets']) or 'no target'}"
    typer.echo(f"  would start automation {text}")


def _mode(status: str) -> str:
    return {"queued": "auto", "pending": "approve"}.get(status, status)


def policy_test(
    file: Annotated[Path, typer.Argument(help="Policy tests (YAML): payloads and the expected decisions.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Check severities, receivers and runbooks for recorded payloads; exit 1 on any mismatch."""
    configure_logging("warning")
    cfg = load(config)
    outcomes = run(policy_tests.run(file, cfg))
    for outcome in outcomes:
        if as_json:
            typer.echo(json.dumps({"name": outcome.name, "passed": outcome.passed, "failures": outcome.failures}))
            continue
        typer.echo(f"{'ok  ' if outcome.passed else 'FAIL'} {outcome.name}")
        for failure in outcome.failures:
            typer.echo(f"     {failure}")
    failed = sum(not o.passed for o in outcomes)
    if not as_json:
        typer.echo(f"{len(outcomes) - failed} passed, {failed} failed")
    raise typer.Exit(1 if failed else 0)
