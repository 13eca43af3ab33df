"""``alertbot slack manifest``: print the Slack app's manifest (alertbot/slack/manifest.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
import yaml

from alertbot.cli_support import JsonOpt, fail
from alertbot.errors import PayloadError
from alertbot.slack.manifest import manifest

slack_app = typer.Typer(help="The Slack app alertbot needs.", no_args_is_help=True)


@slack_app.command("manifest")
def slack_manifest(
    url: Annotated[
        str | None, typer.Option(help="alertbot's public HTTPS base URL (only without Socket Mode).")
    ] = None,
    socket_mode: Annotated[
        bool, typer.Option("--socket-mode/--no-socket-mode", help="Commands and buttons over Socket Mode.")
    ] = True,
    name: Annotated[str, typer.Option(help="The app's and the bot's name.")] = "alertbot",
    as_json: JsonOpt = False,
) -> None:
    """Print the app manifest (YAML; --json for JSON) to paste into "Create New App → From an app
    manifest". With Socket Mode (the default) alertbot needs no public endpoint: then create an
    app-level token with scope connections:write and give it as ALERTBOT_SLACK_APP_TOKEN."""
    try:
        data = manifest(name=name, url=url, socket_mode=socket_mode)
    except ValueError as exc:
        fail(PayloadError(str(exc)))
    typer.echo(json.dumps(data, indent=2) if as_json else yaml.safe_dump(data, sort_keys=False, width=1000), nl=False)
