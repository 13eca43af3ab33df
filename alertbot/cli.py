"""The ``alertbot`` command line (README.md, "Command line"); its command groups live in ``cli_*.py``, its
wiring in ``bootstrap``. Errors print one line to stderr and exit 2 (bad input)
or 1 (a failure), never a traceback for something the user can fix."""

from __future__ import annotations

import asyncio
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from alertbot import __version__
from alertbot.cli_incidents import incidents_app
from alertbot.cli_remote import Daemon, listed
from alertbot.cli_replay import policy_test, read_payload, replay
from alertbot.cli_runbooks import runbook_app
from alertbot.cli_silences import silence_app
from alertbot.cli_slack import slack_app
from alertbot.cli_support import ConfigOpt, JsonOpt, fail, load
from alertbot.domain.classify import classify as classify_alert
from alertbot.domain.matchers import parse_label_args
from alertbot.domain.models import Alert, Classification
from alertbot.domain.passwords import hash_password
from alertbot.domain.route import route
from alertbot.errors import AlertbotError, ConfigError, PayloadError
from alertbot.exposure import check_exposure
from alertbot.observability import configure_logging, redactor
from alertbot.runbooks.automations import automation_problem
from alertbot.runbooks.loader import load_runbooks
from alertbot.settings import config_path_from_env, load_config, load_secrets
from alertbot.store import decisions as decision_repo
from alertbot.store.engine import Store
from alertbot.store.owner import sole_owner
from alertbot.web.app import serve as run_server

app = typer.Typer(
    help="alertbot: Alertmanager webhook → classify → route → PagerDuty / Slack, and runbooks.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
)
routes_app = typer.Typer(help="Explain the routing tree.", no_args_is_help=True)
app.add_typer(routes_app, name="routes")
app.add_typer(silence_app, name="silence")
app.add_typer(runbook_app, name="runbook")
app.add_typer(slack_app, name="slack")
app.add_typer(incidents_app, name="incidents")


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"alertbot {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", metavar="", help="Print the version.", callback=_version, is_eager=True)
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="ALERTBOT_URL",
            help="A running alertbot (http://host:8080): silence and incidents go through its API.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="ALERTBOT_API_TOKEN", help="Its API token.", show_default=False),
    ] = None,
) -> None:
    """alertbot: Alertmanager webhook → classify → route → PagerDuty / Slack, and runbooks."""
    if url:
        ctx.obj = Daemon(url, token or None)


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default: server.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: server.port, 8080; 0 = any free).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: Annotated[
        LogFormat, typer.Option(help="Logs and console notifications: readable on a terminal, else JSON (auto).")
    ] = LogFormat.AUTO,
) -> None:
    """Run the daemon until SIGTERM/SIGINT, then drain gracefully. SIGHUP reloads the config file."""
    cfg = load(config)
    try:
        secrets = load_secrets(cfg)
    except AlertbotError as exc:
        fail(exc)
    readable = {LogFormat.AUTO: None, LogFormat.JSON: False, LogFormat.CONSOLE: True}[log_format]
    configure_logging(log_level, json_logs=None if readable is None else not readable)
    redactor.set_values(secrets.values())
    try:
        check_exposure(cfg, secrets, host or cfg.server.host)  # fail closed on a network address
        with sole_owner(cfg.storage.database_url()):  # one serving process per SQLite file
            asyncio.run(
                run_server(
                    cfg,
                    secrets,
                    host=host or cfg.server.host,
                    port=cfg.server.port if port is None else port,
                    config_path=config_path_from_env(config),
                    readable_console=readable,
                )
            )
    except AlertbotError as exc:
        fail(exc)
    except OSError as exc:
        listen = f"{host or cfg.server.host}:{cfg.server.port if port is None else port}"
        fail(AlertbotError(f"cannot listen on {listen}: {exc.strerror}"))


@app.command("check-config")
def check_config(
    file: Annotated[Path, typer.Argument(help="Config file to validate.")], as_json: JsonOpt = False
) -> None:
    """Validate a config file, the secret files it names, its runbooks and the automations' references."""
    try:
        runbooks, directory = _checked(file)
    except AlertbotError as exc:
        if as_json:
            typer.echo(json.dumps({"file": str(file), "ok": False, "error": exc.message}))
            raise typer.Exit(exc.exit_code) from None
        fail(exc)
    if as_json:
        typer.echo(json.dumps({"file": str(file), "ok": True, "runbooks": runbooks, "runbooks_dir": directory}))
    else:
        typer.echo(f"{file}: ok ({len(runbooks)} runbooks in {directory})")


def _checked(file: Path) -> tuple[list[str], str]:
    """The config's runbook names and directory, or the first reason the daemon would refuse it."""
    cfg = load_config(file)
    load_secrets(cfg)
    runbooks = load_runbooks(cfg.runbooks.dir)
    if not cfg.runbooks.dir.is_dir() and ("dir" in cfg.runbooks.model_fields_set or cfg.automations):
        raise ConfigError(f"{file}: runbooks.dir: {cfg.runbooks.dir} is not a directory")
    problem = automation_problem(cfg.automations, runbooks, cfg.runbooks.dir)
    if problem is not None:
        raise ConfigError(f"{file}: {problem}")
    return sorted(runbooks), str(cfg.runbooks.dir.absolute())


def _classification_line(alert: Alert, cls: Classification) -> str:
    fields = [alert.fingerprint, alert.alertname or "-", alert.service or "-", cls.severity.value, cls.reason]
    return "  ".join(fields)


@app.command("ui-password")
def ui_password() -> None:
    """Print a password hash for ui.users[].password_hash: the password from standard input (one
    line), or asked for twice at a terminal. The password itself is never printed or stored."""
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        fail(PayloadError("use a password of at least 12 characters"))
    typer.echo(hash_password(password))


@app.command()
def classify(
    file: Annotated[Path, typer.Argument(help="Alertmanager webhook payload (JSON).")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print fingerprint, alertname, service, severity and reason for each alert in a payload."""
    cfg = load(config)
    for alert in read_payload(file).alerts:
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
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Print the receivers a label set reaches, and the path through the tree."""
    cfg = load(config)
    try:
        label_set = parse_label_args(labels)
    except ValueError as exc:
        fail(PayloadError(str(exc)))
    result = route(cfg.routes, label_set)
    if as_json:
        matches = [
            {"path": list(m.path), "receivers": list(m.receivers), "shadow": m.shadow, "escalation": m.escalation}
            for m in result.matches
        ]
        quiet = result.quiet_hours.model_dump(mode="json") if result.quiet_hours else None
        routed = {"receivers": list(result.receivers), "escalation": result.escalation, "quiet_hours": quiet}
        typer.echo(json.dumps({**routed, "matches": matches}))
        return
    typer.echo(" ".join(result.receivers) if result.receivers else "(no receivers)")
    for match in result.matches:
        typer.echo("  path: " + " → ".join(match.path) + f"  ⇒  {', '.join(match.receivers) or '(none)'}")
    if result.escalation:
        typer.echo(f"  escalation: {result.escalation} (until acknowledged)")
    if result.quiet_hours:
        typer.echo(f"  quiet hours: {result.quiet_hours.describe()} (info and warning wait)")


@app.command("decisions")
def decisions_cmd(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 100,
    config: ConfigOpt = None,
) -> None:
    """What shadow mode would have sent or run (nothing was), newest first."""

    async def fetch(store: Store) -> list[dict[str, Any]]:
        return [d.to_json() for d in await store.read(decision_repo.recent, limit)]

    for decision in listed(ctx, config, "/api/v1/decisions", fetch, limit=str(limit)):
        if as_json:
            typer.echo(json.dumps(decision))
        else:
            typer.echo(f"{decision['created_at']}  incident {decision['incident_id']}  {decision['summary']}")


app.command()(replay)
app.command("test")(policy_test)


def main() -> None:
    try:
        app(prog_name="alertbot")  # the same name in usage and completion, however it was started
    except KeyboardInterrupt:
        sys.exit(130)
