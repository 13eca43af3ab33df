"""``alertbot incidents list [MATCHER...]``: what is firing (or was), filtered by label matchers in
the syntax of silences (``service="grocery"``, ``severity=~"critical|warning"``), like amtool's
``alert query``. From the store named by the config, or with ``--url`` from the daemon's API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from alertbot.cli_remote import listed
from alertbot.cli_support import ConfigOpt, JsonOpt, fail
from alertbot.domain.matchers import Matcher, all_match
from alertbot.errors import PayloadError
from alertbot.store import incidents
from alertbot.store.engine import Store

incidents_app = typer.Typer(help="Incidents: what is firing, and what was.", no_args_is_help=True)


@incidents_app.command("list")
def incidents_list(  # noqa: PLR0917 (typer reads the options from the signature)
    ctx: typer.Context,
    matchers: Annotated[
        list[str] | None, typer.Argument(help='Matchers on labels and severity: name=value, name=~"re", ...')
    ] = None,
    status: Annotated[str, typer.Option(help="firing, resolved or all.")] = "firing",
    limit: Annotated[int, typer.Option(help="How many, newest first (before matching).")] = 500,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List incidents, newest first: one line each (id, status, severity, alertname, service, since,
    what mutes it), or JSON objects with --json."""
    if status not in ("firing", "resolved", "all"):
        fail(PayloadError(f"--status: must be firing, resolved or all, got {status!r}"))
    try:
        wanted = [Matcher.parse(text) for text in matchers or []]
    except ValueError as exc:
        fail(PayloadError(str(exc)))
    query = {"limit": str(limit), **({"status": status} if status != "all" else {})}

    async def fetch(store: Store) -> list[dict[str, Any]]:
        records = await store.read(incidents.list_incidents, status=query.get("status"), limit=limit)
        return [r.to_json() for r in records]

    for incident in listed(ctx, config, "/api/v1/incidents", fetch, **query):
        if not all_match(wanted, {**incident["labels"], "severity": incident["severity"]}):
            continue
        if as_json:
            typer.echo(json.dumps(incident, sort_keys=True))
        else:
            typer.echo(_line(incident))


def _line(incident: dict[str, Any]) -> str:
    muted = f"  muted: {incident['suppressed_by']}" if incident.get("suppressed_by") else ""
    fields = [
        str(incident["id"]),
        incident["status"],
        incident["severity"],
        incident["alertname"] or "-",
        incident["service"] or "-",
        f"since {incident['starts_at']}",
    ]
    return "  ".join(fields) + muted
