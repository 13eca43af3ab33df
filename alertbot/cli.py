"""The ``alertbot`` command line (CONTRACT §2). Errors print one line to stderr and exit 2 (bad input)
or 1 (a failure), never a traceback for something the user can fix."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from alertbot import policy_tests
from alertbot.domain.automation import automation_matches, render_params
from alertbot.domain.classify import classify as classify_alert
from alertbot.domain.matchers import Matcher, parse_label_args
from alertbot.domain.models import Alert, AlertStatus, Classification
from alertbot.domain.parse import parse_duration, parse_webhook
from alertbot.domain.route import route
from alertbot.domain.silence import Silence
from alertbot.errors import AlertbotError, ConfigError, PayloadError
from alertbot.notify.base import Event, Notification
from alertbot.notify.pagerduty import build_event
from alertbot.notify.slack_blocks import alert_blocks, fallback_text
from alertbot.observability import configure_logging, redactor
from alertbot.pipeline import plan_routing
from alertbot.runbooks.automations import automation_target_problem
from alertbot.runbooks.executor import Executor, RunResult
from alertbot.runbooks.loader import load_runbooks
from alertbot.runbooks.model import Runbook
from alertbot.runbooks.prometheus import Prometheus
from alertbot.runbooks.targets import target_refusal
from alertbot.settings import AutomationConfig, Config, config_path_from_env, load_config, load_secrets
from alertbot.store import decisions as decision_repo
from alertbot.store import runbook_runs
from alertbot.store import silences as silence_repo
from alertbot.store.decisions import Decision
from alertbot.store.engine import Store
from alertbot.store.incidents import IncidentRecord
from alertbot.store.runbook_runs import RunRecord
from alertbot.web.app import enabled_channel_names, kube_factory
from alertbot.web.app import serve as run_server
from alertbot.web.exposure import check_exposure

app = typer.Typer(
    help="alertbot: Alertmanager webhook → classify → route → PagerDuty / Slack, and runbooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
routes_app = typer.Typer(help="Explain the routing tree.", no_args_is_help=True)
silence_app = typer.Typer(help="Create, list and expire silences (in the configured store).", no_args_is_help=True)
runbook_app = typer.Typer(help="List, run (dry-run first), undo and audit runbooks.", no_args_is_help=True)
app.add_typer(routes_app, name="routes")
app.add_typer(silence_app, name="silence")
app.add_typer(runbook_app, name="runbook")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Config file (default: $ALERTBOT_CONFIG).")]
T = TypeVar("T")


def fail(error: AlertbotError) -> NoReturn:
    typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(error.exit_code)


def _config(path: Path | None) -> Config:
    try:
        return load_config(config_path_from_env(path))
    except AlertbotError as exc:
        fail(exc)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except AlertbotError as exc:
        fail(exc)


def _read_payload(path: Path) -> list[Alert]:
    try:
        body = path.read_bytes()
    except OSError as exc:
        fail(PayloadError(f"{path}: {exc.strerror}"))
    try:
        return parse_webhook(body).alerts
    except PayloadError as exc:
        fail(PayloadError(f"{path}: {exc.message}"))


def _notifiers_enabled(config: Config) -> list[str]:
    try:
        return enabled_channel_names(load_secrets(config))
    except AlertbotError as exc:
        fail(exc)


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default: server.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: server.port, 8080; 0 = any free).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the daemon until SIGTERM/SIGINT, then drain gracefully."""
    cfg = _config(config)
    try:
        secrets = load_secrets(cfg)
    except AlertbotError as exc:
        fail(exc)
    configure_logging(log_level)
    redactor.set_values(secrets.values())
    try:
        check_exposure(cfg, secrets, host or cfg.server.host)  # fail closed on a network address
        asyncio.run(
            run_server(cfg, secrets, host=host or cfg.server.host, port=cfg.server.port if port is None else port)
        )
    except AlertbotError as exc:
        fail(exc)
    except OSError as exc:
        fail(AlertbotError(f"cannot listen on {host or cfg.server.host}:{port}: {exc.strerror}"))


@app.command("check-config")
def check_config(file: Annotated[Path, typer.Argument(help="Config file to validate.")]) -> None:
    """Validate a config file, the secret files it names, its runbooks and the automations' references."""
    try:
        cfg = load_config(file)
        load_secrets(cfg)
        runbooks = load_runbooks(cfg.runbooks.dir)
    except AlertbotError as exc:
        fail(exc)
    for index, automation in enumerate(cfg.automations):
        if automation.runbook not in runbooks:
            fail(
                ConfigError(
                    f"{file}: automations[{index}].runbook: no runbook {automation.runbook!r} in "
                    f"{cfg.runbooks.dir} (have: {', '.join(sorted(runbooks)) or 'none'})"
                )
            )
    problem = automation_target_problem(cfg.automations, runbooks)
    if problem is not None:
        fail(ConfigError(f"{file}: {problem}"))
    typer.echo(f"{file}: ok ({len(runbooks)} runbooks)")


def _classification_line(alert: Alert, cls: Classification) -> str:
    fields = [alert.fingerprint, alert.alertname or "-", alert.service or "-", cls.severity.value, cls.reason]
    return "  ".join(fields)


@app.command()
def classify(
    file: Annotated[Path, typer.Argument(help="Alertmanager webhook payload (JSON).")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print fingerprint, alertname, service, severity and reason for each alert in a payload."""
    cfg = _config(config)
    for alert in _read_payload(file):
        cls = classify_alert(alert, cfg.classification, cfg.thresholds)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "fingerprint": alert.fingerprint,
                        "alertname": alert.alertname,
                        "service": alert.service,
                        "severity": cls.severity.value,
                        "reason": cls.reason,
                        "sli": cls.sli,
                        "value": cls.value,
                    }
                )
            )
        else:
            typer.echo(_classification_line(alert, cls))


@routes_app.command("test")
def routes_test(
    labels: Annotated[list[str], typer.Argument(help="Labels as name=value; severity is alertbot's severity.")],
    config: ConfigOpt = None,
) -> None:
    """Print the receivers a label set reaches, and the path through the tree."""
    cfg = _config(config)
    try:
        label_set = parse_label_args(labels)
    except ValueError as exc:
        fail(PayloadError(str(exc)))
    result = route(cfg.routes, label_set)
    typer.echo(" ".join(result.receivers) if result.receivers else "(no receivers)")
    for match in result.matches:
        typer.echo("  path: " + " → ".join(match.path) + f"  ⇒  {', '.join(match.receivers) or '(none)'}")


@app.command()
def replay(
    files: Annotated[list[Path], typer.Argument(help="Alertmanager webhook payloads (JSON).")],
    config: ConfigOpt = None,
) -> None:
    """Explain, without sending anything: classification, route, the PagerDuty event and Slack message
    that would be sent, and the automations that would fire."""
    cfg = _config(config)
    enabled = _notifiers_enabled(cfg)
    runbooks = _runbooks(cfg) if cfg.automations else {}
    now = datetime.now(UTC)
    for file in files:
        for alert in _read_payload(file):
            plan = plan_routing(cfg, alert, ["pagerduty", "slack"])
            cls = plan.classification
            typer.echo(f"== {file.name}: {alert.alertname or '-'} {alert.fingerprint} ({alert.status.value})")
            typer.echo(f"  classification: {cls.severity.value} — {cls.reason}")
            for match in plan.route.matches:
                typer.echo("  route: " + " → ".join(match.path) + f"  ⇒  {', '.join(match.receivers) or '(none)'}")
            event: Event = "trigger" if alert.status is AlertStatus.FIRING else "resolve"
            record = _preview_incident(alert, cls, now)
            for dest in plan.destinations:
                notification = Notification.build(record, event, dest)
                note = (
                    ""
                    if dest.channel in enabled or dest.channel == "console"
                    else " [not enabled here, the console would print it instead]"
                )
                if dest.channel == "pagerduty":
                    body = build_event(notification, "<ALERTBOT_PAGERDUTY_ROUTING_KEY>")
                    typer.echo(f"  would send PagerDuty{note}: {json.dumps(body, sort_keys=True)}")
                elif dest.channel == "slack":
                    resolved = event == "resolve"
                    message = {
                        "channel": dest.target,
                        "text": fallback_text(notification, resolved=resolved),
                        "blocks": alert_blocks(notification, resolved=resolved),
                    }
                    typer.echo(f"  would send Slack {dest.target}{note}: {json.dumps(message)}")
                else:
                    typer.echo(f"  would print: {json.dumps(notification.model_dump(mode='json'), sort_keys=True)}")
            for dest in plan.shadow:
                where = f"{dest.channel} {dest.target}".strip()
                typer.echo(f"  would record, not send (shadow mode): {event} to {where}")
            if not plan.destinations and not plan.shadow:
                typer.echo("  would send nothing (no receivers)")
            for automation in cfg.automations:
                if automation_matches(automation.match, plan.labels):
                    typer.echo(f"  would start automation {_automation_preview(automation, alert, runbooks)}")


def _automation_preview(automation: AutomationConfig, alert: Alert, runbooks: dict[str, Runbook]) -> str:
    """What an automation would do with this alert: its params, and whether its target is allowed."""
    head = f"{automation.name}: runbook {automation.runbook} ({automation.mode})"
    try:
        rendered = render_params(automation.params, alert.labels)
    except ValueError as exc:
        return f"{head} params (cannot run: {exc})"
    text = f"{head} params {json.dumps(rendered, sort_keys=True)}"
    runbook = runbooks.get(automation.runbook)
    if runbook is None:
        return text
    try:
        targets = runbook.targets(runbook.resolve_params(rendered))
    except ValueError as exc:
        return f"{text} — would fail: {exc}"
    refusal = target_refusal(automation, runbook, targets)
    return f"{text} — would be rejected: {refusal}" if refusal else f"{text} on {', '.join(targets) or 'no target'}"


def _preview_incident(alert: Alert, cls: Classification, now: datetime) -> IncidentRecord:
    return IncidentRecord(
        id=0,
        fingerprint=alert.fingerprint,
        starts_at=alert.starts_at,
        status=alert.status.value,
        alertname=alert.alertname,
        service=alert.service,
        namespace=alert.namespace,
        severity=cls.severity,
        reason=cls.reason,
        sli=cls.sli,
        value=cls.value,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        generator_url=alert.generator_url,
        group_key="",
        destinations=[],
        suppressed_by=None,
        ends_at=alert.ends_at,
        created_at=now,
        updated_at=now,
        resolved_at=None,
    )


@app.command("decisions")
def decisions_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 100,
    config: ConfigOpt = None,
) -> None:
    """What shadow mode would have sent or run (nothing was), newest first."""
    cfg = _config(config)

    async def fetch(store: Store) -> list[Decision]:
        return await store.read(decision_repo.recent, limit)

    for decision in _run(_with_store(cfg, fetch)):
        if as_json:
            typer.echo(json.dumps(decision.to_json()))
        else:
            typer.echo(f"{decision.created_at.isoformat()}  incident {decision.incident_id}  {decision.summary}")


@app.command("test")
def policy_test(
    file: Annotated[Path, typer.Argument(help="Policy tests (YAML): payloads and the expected decisions.")],
    config: ConfigOpt = None,
) -> None:
    """Check severities, receivers and runbooks for recorded payloads; exit 1 on any mismatch."""
    cfg = _config(config)
    try:
        outcomes = policy_tests.run(file, cfg)
    except AlertbotError as exc:
        fail(exc)
    for outcome in outcomes:
        typer.echo(f"{'ok  ' if outcome.passed else 'FAIL'} {outcome.name}")
        for failure in outcome.failures:
            typer.echo(f"     {failure}")
    failed = sum(not o.passed for o in outcomes)
    typer.echo(f"{len(outcomes) - failed} passed, {failed} failed")
    raise typer.Exit(1 if failed else 0)


async def _with_store(cfg: Config, action: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
    store = await Store.open(cfg.storage.database_url(), busy_timeout=cfg.storage.busy_timeout)
    try:
        return await action(store)
    finally:
        await store.close()


@silence_app.command("add")
def silence_add(
    matchers: Annotated[list[str], typer.Argument(help='Matchers: name=value, name!=value, name=~"re", name!~"re".')],
    duration: Annotated[str, typer.Option("--duration", "-d", help="How long, e.g. 2h or 30m.")] = "1h",
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    created_by: Annotated[str, typer.Option("--by", help="Who.")] = "cli",
    config: ConfigOpt = None,
) -> None:
    """Silence matching alerts for a while (stored; the running daemon sees it at once)."""
    cfg = _config(config)
    try:
        parsed = [Matcher.parse(m) for m in matchers]
        length = parse_duration(duration)
    except ValueError as exc:
        fail(PayloadError(str(exc)))
    if length.total_seconds() <= 0:
        fail(PayloadError("--duration must be positive"))
    now = datetime.now(UTC)

    async def create(store: Store) -> Silence:
        return await store.write(
            silence_repo.create,
            parsed,
            starts_at=now,
            ends_at=now + length,
            created_by=created_by,
            comment=comment,
            now=now,
        )

    silence = _run(_with_store(cfg, create))
    typer.echo(json.dumps(silence_repo.silence_json(silence)))


@silence_app.command("list")
def silence_list(
    include_expired: Annotated[bool, typer.Option("--expired", help="Include ended silences.")] = False,
    config: ConfigOpt = None,
) -> None:
    """List silences, newest first, one JSON object per line."""
    cfg = _config(config)

    async def fetch(store: Store) -> list[Silence]:
        return await store.read(silence_repo.list_all, include_expired=include_expired, now=datetime.now(UTC))

    for silence in _run(_with_store(cfg, fetch)):
        typer.echo(json.dumps(silence_repo.silence_json(silence)))


@silence_app.command("expire")
def silence_expire(silence_id: Annotated[int, typer.Argument(help="Silence id.")], config: ConfigOpt = None) -> None:
    """End a silence now."""
    cfg = _config(config)

    async def expire(store: Store) -> bool:
        return await store.write(silence_repo.expire, silence_id, datetime.now(UTC))

    if not _run(_with_store(cfg, expire)):
        fail(PayloadError(f"no active silence {silence_id}"))
    typer.echo(f"silence {silence_id} expired")


def _executor(cfg: Config, store: Store) -> Executor:
    return Executor(
        store,
        kube_factory(cfg),
        clock=lambda: datetime.now(UTC),
        dry_run_only=cfg.runbooks.dry_run,
        settle=cfg.kubernetes.settle,
        prometheus=Prometheus(cfg.prometheus.url) if cfg.prometheus.url else None,
        automations=cfg.automations,
    )


def _runbooks(cfg: Config) -> dict[str, Runbook]:
    try:
        return load_runbooks(cfg.runbooks.dir)
    except AlertbotError as exc:
        fail(exc)


def _print_result(result: RunResult) -> None:
    for plan in result.plans:
        for line in plan.lines:
            typer.echo(f"  {plan.index}. {line}")
    typer.echo(f"run {result.run_id}: {result.status} — {result.message}")


def _whoami() -> str:
    return f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or 'unknown'}"


@runbook_app.command("list")
def runbook_list(config: ConfigOpt = None) -> None:
    """Every runbook with its params."""
    for runbook in _runbooks(_config(config)).values():
        params = []
        for p in runbook.params:
            text = p.name + (f"={p.default}" if p.default else "") + ("" if not p.required else " (required)")
            params.append(text)
        typer.echo(f"{runbook.name} [{runbook.risk}] {runbook.description}")
        typer.echo(f"  params: {', '.join(params) or 'none'}")


@runbook_app.command("run")
def runbook_run(
    name: Annotated[str, typer.Argument(help="Runbook name.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="k=v, repeatable.")] = None,
    execute: Annotated[bool, typer.Option("--execute", help="Apply the plan (default: dry run).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Plan a runbook (dry run) and, with --execute, apply it. Exit 0 done, 1 failed, 2 bad input."""
    cfg = _config(config)
    runbooks = _runbooks(cfg)
    if name not in runbooks:
        fail(PayloadError(f"no runbook {name!r} (have: {', '.join(sorted(runbooks)) or 'none'})"))
    try:
        params = parse_label_args(param or [])
    except ValueError as exc:
        fail(PayloadError(str(exc).replace("label", "param")))

    async def go(store: Store) -> RunResult:
        return await _executor(cfg, store).run(runbooks[name], params, execute=execute, trigger=_whoami())

    result = _run(_with_store(cfg, go))
    _print_result(result)
    raise typer.Exit(0 if result.ok else 1)


@runbook_app.command("undo")
def runbook_undo(
    run_id: Annotated[int, typer.Argument(help="The run to undo.")],
    execute: Annotated[bool, typer.Option("--execute", help="Apply the undo (default: dry run).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Restore the state a run found before it changed anything (guarded: fails if changed since)."""
    cfg = _config(config)

    async def go(store: Store) -> RunResult:
        return await _executor(cfg, store).undo(run_id, execute=execute, trigger=_whoami())

    result = _run(_with_store(cfg, go))
    _print_result(result)
    raise typer.Exit(0 if result.ok else 1)


@runbook_app.command("history")
def runbook_history(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 50,
    config: ConfigOpt = None,
) -> None:
    """The audit log, newest first."""
    cfg = _config(config)

    async def fetch(store: Store) -> list[RunRecord]:
        return await store.read(runbook_runs.history, limit)

    for record in _run(_with_store(cfg, fetch)):
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        k: record.to_json()[k]
                        for k in ("id", "runbook", "params", "trigger", "status", "started_at", "result", "undo_of")
                    }
                )
            )
        else:
            params = " ".join(f"{k}={v}" for k, v in record.params.items())
            typer.echo(
                f"{record.id}  {record.started_at.isoformat()}  {record.status:9}  {record.runbook}  "
                f"{params}  ({record.trigger})"
            )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
